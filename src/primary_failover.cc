// The primary's side of failover (SPEC 11): fencing when a higher term
// shows up, answering a primary whose term is over on our own backup topics,
// and handing over to the backup role with the tree kept aside first.
#include <algorithm>

#include "hubsync/engine.h"
#include "sync_session.h"

namespace hubsync {

namespace {
constexpr char kKeptRoot[] = ".hubsync/kept";
}  // namespace

void PrimaryEngine::Fence(const Claim& winner) {
  if (fenced()) return;
  fenced_by_ = winner;
  outbox_.Clear();  // nothing queued goes out either
  std::string who = winner.primary.empty() ? "term " + std::to_string(winner.term) : Describe(winner);
  Log(LogLevel::kError, "fenced: " + who + " beats our " + Describe(claim_) +
                            "; this hub serves no more");
  if (!winner.primary.empty()) {
    // Remembered, so a restart with the same config stays fenced.
    Status s = SaveClaim(env_.state, winner);
    if (!s.ok()) Log(LogLevel::kError, "cannot store the winning term: " + s.ToString());
  }
  Emit(Event{"fenced",
             env_.config.gateway_id,
             {{"term", static_cast<int64_t>(winner.term)},
              {"our_term", static_cast<int64_t>(claim_.term)}},
             {{"primary", winner.primary}}});
  if (HoldsKeyWith(winner.primary)) {
    // We become its backup: its tree replaces ours, so ours is kept aside
    // first, whole (what we changed after the split is in it).
    Status kept = KeepAside();
    if (kept.ok()) {
      demote_ = true;
    } else {
      Log(LogLevel::kError, "cannot keep our tree aside (" + kept.ToString() +
                                "): staying idle rather than letting it be overwritten");
    }
  } else if (!winner.primary.empty()) {
    Log(LogLevel::kWarn, "no key made by " + winner.primary + " for us: idle (give this hub one "
                         "with hubsync keygen on " + winner.primary + " and keyimport here)");
  }
  PublishStatus();
}

bool PrimaryEngine::HoldsKeyWith(const std::string& primary) const {
  if (primary.empty() || primary == env_.config.gateway_id) return false;
  return keys_.Load(KeyStore::MadeBy(env_.config.gateway_id, primary)).ok();
}

std::optional<Role> PrimaryEngine::Handover() const {
  return demote_ ? std::optional<Role>(Role::kBackup) : std::nullopt;
}

std::string PrimaryEngine::KeptDir(const Claim& winner) {
  return std::string(kKeptRoot) + "/fenced-by-term-" + std::to_string(winner.term) + "-" + winner.primary;
}

Status PrimaryEngine::KeepAside() {
  if (!current_) return Status::Ok();
  // Named by the claim that fenced us: kept once per fencing, and a restart
  // that finds it (a hub fenced, then restarted as primary) keeps it as is.
  std::string dir = KeptDir(fenced_by_);
  if (env_.fs->Stat(dir).ok()) return Status::Ok();
  HUBSYNC_RETURN_IF_ERROR(env_.fs->MakeDir(".hubsync", 0700));
  HUBSYNC_RETURN_IF_ERROR(env_.fs->MakeDir(kKeptRoot, 0700));
  // Built under a temporary name and renamed: a crash never leaves a part
  // that a restart would take for the whole.
  std::string part = dir + ".part";
  HUBSYNC_RETURN_IF_ERROR(env_.fs->RemoveTree(part));
  HUBSYNC_RETURN_IF_ERROR(env_.fs->MakeDir(part, 0700));
  size_t files = 0;
  uint64_t bytes = 0;
  std::vector<char> buf(1 << 16);
  for (const Entry& e : *current_) {
    std::string to = part + "/" + e.path;
    if (e.type == EntryType::kDir) {
      HUBSYNC_RETURN_IF_ERROR(env_.fs->MakeDir(to, 0700));
      continue;
    }
    if (e.type == EntryType::kSymlink) {
      HUBSYNC_RETURN_IF_ERROR(env_.fs->Symlink(e.target, to));
      continue;
    }
    auto in = env_.fs->OpenRead(e.path);
    if (!in.ok()) {
      if (in.status().code() == Status::Code::kNotFound) continue;  // gone since the scan
      return in.status();
    }
    auto out = env_.fs->Create(to);
    if (!out.ok()) return out.status();
    for (uint64_t at = 0;;) {
      auto n = (*in)->ReadAt(at, buf.data(), buf.size());
      if (!n.ok()) return n.status();
      if (*n == 0) break;
      HUBSYNC_RETURN_IF_ERROR((*out)->Append(std::string_view(buf.data(), *n)));
      at += *n;
      bytes += *n;
    }
    HUBSYNC_RETURN_IF_ERROR((*out)->SetAttrs(e.mode & 0777, e.mtime_ns));
    HUBSYNC_RETURN_IF_ERROR((*out)->Close());
    ++files;
  }
  HUBSYNC_RETURN_IF_ERROR(env_.fs->SyncAll());
  HUBSYNC_RETURN_IF_ERROR(env_.fs->Rename(part, dir));
  HUBSYNC_RETURN_IF_ERROR(env_.fs->SyncDir(kKeptRoot));
  Log(LogLevel::kWarn, "kept aside: our tree as it was when fenced (" + std::to_string(files) +
                           " files, " + std::to_string(bytes) + " bytes) in data_dir/" + dir +
                           "; what we changed after the split is there, never pushed");
  Emit(Event{"kept_aside",
             env_.config.gateway_id,
             {{"files", static_cast<int64_t>(files)}, {"bytes", static_cast<int64_t>(bytes)},
              {"term", static_cast<int64_t>(fenced_by_.term)}},
             {{"dir", dir}}});
  return Status::Ok();
}

// A request or delta on our own backup topics: a primary that still takes
// us for its backup. One whose term is over is told so (sealed kFenced), as
// a backup would; one whose term beats ours (the winner of a split) fences us.
void PrimaryEngine::OnOwnTopic(const Message& m) {
  auto hdr = DecodeEnvelopeHeader(m.payload);
  if (!hdr.ok() || hdr->primary == env_.config.gateway_id) return;
  const std::string& self = env_.config.gateway_id;
  std::string record = KeyStore::MadeBy(self, hdr->primary);
  if (!keys_.Load(record).ok()) record = self;
  auto ch = SecureChannel::Create(env_.state, env_.config.home, self, false, record);
  if (!ch.ok()) return;  // no key with it: nothing it sent could be authentic
  (*ch)->set_max_plain(static_cast<size_t>(env_.config.max_message_bytes));
  auto opened = (*ch)->Open(m.payload);
  if (!opened.ok()) {
    Emit(RejectedEvent(self, "own topics", opened.status().message(), m.payload.size()));
    return;
  }
  Claim theirs{opened->header.term, opened->header.primary};
  if (Beats(theirs, claim_) && !fenced()) {
    Log(LogLevel::kWarn, hdr->primary + " serves under " + Describe(theirs) + ", which beats ours");
    Fence(theirs);
    return;
  }
  if (!Beats(claim_, theirs) || fenced()) return;
  Log(LogLevel::kInfo, "told " + theirs.primary + " (" + Describe(theirs) + ") that we serve " +
                           Describe(claim_));
  Ack a;
  a.kind = Ack::Kind::kFenced;
  a.primary = self;
  (*ch)->set_primary(theirs.primary);
  (*ch)->set_term(claim_.term);
  auto sealed = (*ch)->Seal(MsgKind::kAck, opened->header.transfer, 0, true, EncodeAck(a));
  if (!sealed.ok()) return;
  Message out;
  out.topic = topics_.Ack(self);
  out.payload = std::move(sealed).value();
  outbox_.Send(std::move(out));
}

}  // namespace hubsync
