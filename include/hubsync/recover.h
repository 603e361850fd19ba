// Recovery before use: after a crash or power cut, a backup's data_dir may
// hold a delta half applied (the journal durable, some renames done). The
// hub's own services read data_dir too and may start before hubsync; run
// RecoverDataDir (or `hubsync recover`, or the hubsync-recover.service that
// runs it at boot) before them, so they never see a tree that never existed
// on the primary. The backup daemon runs the same recovery when it starts.
#ifndef HUBSYNC_RECOVER_H_
#define HUBSYNC_RECOVER_H_

#include "hubsync/applier.h"
#include "hubsync/config.h"
#include "hubsync/status.h"

namespace hubsync {

// Takes state_dir's lock (Unavailable, naming the holder, while a daemon
// runs: it recovered when it started and is the only one applying), then
// finishes a committed delta (the tree reaches its new state) or discards an
// uncommitted one (the tree stays old), without a broker. Nothing is created
// when data_dir has never received a delta. Corruption naming the journal
// when it is damaged: nothing is changed then (see the error's text for what
// to do).
Result<Applier::Recovery> RecoverDataDir(const Config& config);

}  // namespace hubsync

#endif  // HUBSYNC_RECOVER_H_
