// The two sync engines, primary and backup, and what they are built from.
//
// An engine is protocol logic over the seams: it never creates a thread,
// never sleeps, and touches the network, data_dir and state_dir only through
// the Transport, FileSystem and StateStore it is given. Its daemon
// (src/daemon.cc) owns the seams, holds state_dir's lock (StateDirLock) and
// an EventLoop, and calls the engine only from that loop's thread:
// OnMessage / OnConnection / OnChanges as events arrive, Tick(now) whenever
// the deadline Tick last returned has passed.
#ifndef HUBSYNC_ENGINE_H_
#define HUBSYNC_ENGINE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "hubsync/admission.h"
#include "hubsync/applier.h"
#include "hubsync/change_source.h"
#include "hubsync/clock.h"
#include "hubsync/config.h"
#include "hubsync/delta_writer.h"
#include "hubsync/envelope.h"
#include "hubsync/filesystem.h"
#include "hubsync/keystore.h"
#include "hubsync/messages.h"
#include "hubsync/pairing.h"
#include "hubsync/policy.h"
#include "hubsync/scanner.h"
#include "hubsync/state_store.h"
#include "hubsync/term.h"
#include "hubsync/transport.h"

namespace hubsync {

using LogFn = std::function<void(LogLevel, const std::string&)>;

// What an engine needs; the daemon fills it with the real seams, tests with
// fakes. The engine owns none of them.
struct EngineEnv {
  Config config;
  Transport* transport = nullptr;
  FileSystem* fs = nullptr;
  StateStore* state = nullptr;      // state_dir
  Clock* clock = nullptr;
  ChangeSource* changes = nullptr;  // primary only
  Transport* oob = nullptr;         // the local OOB broker, for pairing (optional)
  LogFn log;
};

// Topic names of SPEC 5.
struct Topics {
  explicit Topics(const Config& c) : prefix(c.TopicPrefix()) {}
  std::string Status(const std::string& gw) const { return prefix + "gw/" + gw + "/status"; }
  std::string ManifestReq(const std::string& b) const { return prefix + "gw/" + b + "/manifest/req"; }
  std::string ManifestRes(const std::string& b) const { return prefix + "gw/" + b + "/manifest/res"; }
  std::string Delta(const std::string& b) const { return prefix + "gw/" + b + "/delta"; }
  std::string Ack(const std::string& b) const { return prefix + "gw/" + b + "/ack"; }
  std::string Events() const { return prefix + "events"; }
  std::string Policies() const { return prefix + "policy/+"; }
  // `hubsync status` asks every gateway to publish its status now (live
  // messages cross a clustered broker's nodes; retained ones may not).
  std::string StatusAsk() const { return prefix + "status/ask"; }
  // Hub software (the admin account) asks a backup to take over (SPEC 11).
  std::string Promote(const std::string& gw) const { return prefix + "gw/" + gw + "/promote"; }
  std::string Hello(const std::string& b) const { return prefix + "oob/" + b + "/hello"; }
  std::string Welcome(const std::string& b) const { return prefix + "oob/" + b + "/welcome"; }
  std::string prefix;
};

// Messages that could not be published yet (broker away, too many in
// flight). Flushed in order; cleared when a sync they belong to restarts.
// Bounded: beyond kMaxMessages queued, a new message is dropped and counted
// (syncs time out and restart; statuses are re-sent; events are best effort),
// so a broker that stays away cannot grow the daemon.
class Outbox {
 public:
  static constexpr size_t kMaxMessages = 1024;

  explicit Outbox(Transport* t) : t_(t) {}
  void Send(Message m);
  void Flush();
  void Clear() { queue_.clear(); }
  size_t size() const { return queue_.size(); }
  uint64_t dropped() const { return dropped_; }

 private:
  Transport* t_;
  std::deque<Message> queue_;
  uint64_t dropped_ = 0;
};

// A status is published again this often even if nothing changed.
constexpr int64_t kStatusRefreshMs = 30000;

// A gateway's answers to status/ask (it publishes its status again): at
// most one per kGapMs, so anyone allowed to ask cannot make it publish
// faster; an ask inside the gap is answered at its end, which is still
// within the wait of the `hubsync status` that asked.
class StatusAsks {
 public:
  static constexpr int64_t kGapMs = 200;
  // An ask arrived at `now`: true to answer at once (else Due says when).
  bool OnAsk(int64_t now);
  // True when a deferred ask is to be answered now.
  bool Due(int64_t now);
  // When to call Due again (INT64_MAX: nothing deferred).
  int64_t next() const { return deferred_ ? next_ms_ : INT64_MAX; }

 private:
  int64_t next_ms_ = 0;
  bool deferred_ = false;
};
// Subscribes to status/ask; a broker that refuses it (an ACL from before it
// existed) costs only the live answers, so it is logged, never retried.
void SubscribeStatusAsk(Transport* t, const Topics& topics, const LogFn& log);

// Subscribes to each filter in turn (QoS 1), stopping at the first the
// broker does not grant; the engines retry a failed set (kResubscribeMs).
Status SubscribeAll(Transport* t, const std::vector<std::string>& filters);
constexpr int64_t kResubscribeMs = 1000;

// The state_dir record where a backup daemon leaves the result of a pairing
// round ("ok <maker>:<epoch> ...") for `hubsync pair`, which asked for it.
constexpr char kPairResult[] = "pair.result";

// A pairing hello from the OOB topic, checked against the topic it came on
// (src/primary_pairing.cc; a standby answers hellos too); a bad one is
// logged and emitted as a rejected event, and yields nothing.
std::optional<PairHello> CheckedHello(const Topics& topics, const Message& m,
                                      const std::string& self, const LogFn& log,
                                      const std::function<void(Event)>& emit);
// Answers an admitted hello with `desk`'s welcome on `oob` (nothing for a
// hello whose key is confirmed), logging and emitting a pairing event when
// an offer is made or refused; `standby` says which role `self` answers in.
void AnswerWithDesk(PairingDesk& desk, const PairHello& hello, Transport* oob,
                    const Topics& topics, const std::string& self, bool standby, int64_t now_ms,
                    const LogFn& log, const std::function<void(Event)>& emit);

// What both engines keep about their link to the broker.
//
// Report logs every failure and loss with its reason: a new cause at once,
// the same cause again only after 30 s, then after twice as long each time
// (up to an hour), saying how many attempts failed meanwhile; a connection
// after failures says how long the broker was away.
//
// message_bytes() is the largest message to publish: max_message_bytes,
// lowered to fit the Maximum Packet Size the broker announces, and halved
// (down to kMinMessageBytes) with a warning naming max_message_bytes when
// the broker, announcing no limit, drops the connection on our largest
// messages: at once when it says "Packet too large", else on the second
// drop in a row with a message that large unacknowledged and none as large
// acknowledged in between. It never grows back until the daemon restarts.
class BrokerLink {
 public:
  static constexpr size_t kMinMessageBytes = 16384;
  static constexpr int64_t kFirstRepeatMs = 30000, kMaxRepeatMs = 3600000;
  // Room for the MQTT header, topic and properties around our payload.
  static constexpr size_t kPacketOverhead = 512;

  // `name`: how log lines call this broker ("the broker", "the OOB broker").
  BrokerLink(std::string name, const Config& config, Clock* clock, LogFn log);
  void Report(const LinkEvent& e);
  size_t message_bytes() const { return message_bytes_; }

 private:
  void Failed(const std::string& reason);
  void Log(LogLevel level, const std::string& line);

  std::string name_;
  size_t configured_;
  Clock* clock_;
  LogFn log_;
  size_t message_bytes_;
  std::string last_reason_;
  int64_t first_failure_ms_ = -1;  // since the link was last up; -1 when up
  int64_t next_repeat_ms_ = 0;
  int64_t repeat_gap_ms_ = kFirstRepeatMs;
  uint64_t failures_ = 0, unreported_ = 0;
  int strikes_ = 0;  // drops in a row with a message near message_bytes_ unacknowledged
};

enum class Role { kPrimary, kBackup };

// What a daemon drives: a primary's or a backup's engine. A hub changes role
// without a restart (SPEC 11): after a promotion, or when a fenced primary
// holds a key with the primary that beat it, the engine says which role
// comes next (Handover) and its daemon builds that engine over the same
// seams and connection.
class Engine {
 public:
  virtual ~Engine() = default;
  virtual Status Start() = 0;
  virtual void OnMessage(const Message& m) = 0;
  virtual void OnConnection(const LinkEvent& e) = 0;
  virtual void OnChanges() {}
  virtual void OnOobMessage(const Message& m) = 0;
  virtual void OnOobConnection(const LinkEvent& e) = 0;
  virtual void CheckAll() = 0;
  virtual void RotateKey() = 0;
  virtual int64_t Tick(int64_t now_ms) = 0;
  // Publishes the final status; call before the transport disconnects.
  virtual Message FinalStatus() = 0;
  // `hubsync promote` (SPEC 11): on a backup, makes this hub the primary of
  // a new term; the result says why not (Rejected: behind the
  // last primary and not forced). Only a backup can be promoted.
  struct Promotion {
    Claim claim;       // the new term, ours
    std::string lost;  // forced while behind: what was given up ("" if nothing)
  };
  virtual Result<Promotion> Promote(bool force) {
    (void)force;
    return Status::InvalidArgument("this hub is not a backup");
  }
  // The role the hub should take now, if it should change.
  virtual std::optional<Role> Handover() const { return std::nullopt; }
};

class SyncSession;  // one backup as the primary serves it (src/sync_session.h)

// ---------------------------------------------------------------------------
// The primary: keeps every backup's copy equal to data_dir, one SyncSession
// per backup.
class PrimaryEngine : public Engine {
 public:
  static constexpr uint32_t kWindow = 8;          // delta chunks ahead of the last ack
  static constexpr int64_t kPhaseTimeoutMs = 15000;
  static constexpr int64_t kMaxBackoffMs = 10000;
  // A request nothing has answered is repeated after 1 s, then 2, 4, ...
  static constexpr int64_t kRequestRepeatMs = 1000;
  // Discovery is republished on Home Assistant's birth at most this often.
  static constexpr int64_t kDiscoveryGapMs = 5000;

  explicit PrimaryEngine(EngineEnv env);
  ~PrimaryEngine() override;

  Status Start() override;
  void OnMessage(const Message& m) override;
  void OnConnection(const LinkEvent& e) override;
  void OnChanges() override;
  void OnOobMessage(const Message& m) override;
  void OnOobConnection(const LinkEvent& e) override;
  // Re-reads data_dir and has every backup re-read its own, repairing any
  // drift: what the period policy does, and what SIGUSR1 asks for.
  void CheckAll() override;
  void RotateKey() override {}  // a primary's keys rotate from the backup's side
  int64_t Tick(int64_t now_ms) override;
  Message FinalStatus() override;
  // Fenced by a primary this hub holds a key with (one that hub made for
  // it): it becomes that primary's backup, its tree kept aside first.
  std::optional<Role> Handover() const override;
  const Claim& fenced_by() const { return fenced_by_; }

  // For tests and the benchmark.
  Digest root() const { return root_; }
  bool AllInSync() const;

 private:
  // Re-reads the whole tree. On failure (EIO, a vanished mount) what was
  // known stays current, the status says why, and Tick tries again with a
  // growing delay; `changed` (or everything) is then handed to the policy
  // schedule as if it had just changed.
  bool Rescan(const std::set<std::string>& changed = {}, bool everywhere = true);
  // Makes `m` the current tree (and its root ours).
  void Adopt(std::shared_ptr<const Manifest> m);
  void RetryScan(int64_t now);
  void PublishStatus();
  void PublishDiscovery(const std::string& backup);
  // The primary's own configs, every backup's, and removals for revoked ones.
  void PublishAllDiscovery();
  void Emit(Event e);
  bool MayPair(const std::string& backup, std::string* why);
  void RevokeRemovedBackups();
  // A claim that beats ours (SPEC 11): serve no more, at once and after a
  // restart (it is stored), and say so in the status.
  // Then, if we hold a key the winner made for us, the tree is kept aside
  // (KeptDir) and the hub becomes its backup.
  void Fence(const Claim& winner);
  bool fenced() const { return !fenced_by_.empty(); }
  bool HoldsKeyWith(const std::string& primary) const;
  // Copies the tree, whole, to KeptDir(fenced_by_) unless it is there.
  Status KeepAside();
  // data_dir/.hubsync/kept/fenced-by-term-<N>-<winner>
  static std::string KeptDir(const Claim& winner);
  // A message on our own manifest/req or delta topic (primary_failover.cc).
  void OnOwnTopic(const Message& m);
  // Subscribes to what the primary hears; announces us once granted.
  void Subscribe();
  void OnPolicy(const std::string& module, const std::string& payload);
  bool TryConfirm(const std::string& backup, const Message& m);
  SyncSession* FindPeer(const std::string& id);
  SyncSession& AddPeer(const std::string& id);
  void Log(LogLevel l, const std::string& s) { if (env_.log) env_.log(l, s); }

  EngineEnv env_;
  Topics topics_;
  PathFilter filter_;
  KeyStore keys_;
  std::unique_ptr<Scanner> scanner_;
  Outbox outbox_;
  BrokerLink link_, oob_link_;
  std::shared_ptr<const Manifest> current_;
  Digest root_{};
  bool connected_ = false;
  PolicySchedule policies_;
  int64_t next_status_ms_ = 0;
  int64_t resubscribe_at_ms_ = -1;  // >= 0: subscribing failed, try again then
  int64_t next_discovery_ms_ = 0;
  StatusAsks asks_;
  std::string last_status_;
  std::map<std::string, std::unique_ptr<SyncSession>> peers_;  // by backup
  Claim claim_;      // the term we serve under, and our id
  Claim fenced_by_;  // the claim that beat ours; empty while we serve
  bool demote_ = false;  // fenced, tree kept aside: the backup role takes over
  // data_dir could not be read: why, when to try again, and what changed
  // meanwhile (for the policy schedule once the tree is read).
  struct ScanFault {
    std::string error;  // "" while the tree reads fine
    int64_t retry_at_ms = 0;
    int64_t backoff_ms = 0;
    std::set<std::string> changed;
    bool everywhere = false;
  } scan_fault_;
  PairingDesk desk_;  // offers made to backups that said hello
};

// ---------------------------------------------------------------------------
// A backup: answers manifest requests and applies deltas.
class BackupEngine : public Engine {
 public:
  explicit BackupEngine(EngineEnv env);
  ~BackupEngine() override;

  Status Start() override;
  void OnMessage(const Message& m) override;
  void OnConnection(const LinkEvent& e) override;
  void OnOobMessage(const Message& m) override;
  void OnOobConnection(const LinkEvent& e) override;
  void CheckAll() override {}  // the primary drives checks
  // Agrees a new key (the next epoch) over the out-of-band topic, as
  // `hubsync pair` does: what that command asks a running daemon for
  // (SIGUSR2), since only the process holding state_dir may seal.
  void RotateKey() override;
  int64_t Tick(int64_t now_ms) override;
  Message FinalStatus() override;
  // Finishes or discards an interrupted apply, refuses when this hub is
  // behind the root its primary last announced (unless `force`), then
  // stores the claim (highest term seen + 1, this hub) and hands over to
  // the primary role.
  Result<Promotion> Promote(bool force) override;
  std::optional<Role> Handover() const override {
    return promoted_ ? std::optional<Role>(Role::kPrimary) : std::nullopt;
  }

  Digest root() const { return root_; }

 private:
  // Subscribes to our request and delta topics; announces us once granted.
  void Subscribe();
  void OnManifestRequest(const Message& m);
  void OnDelta(const Message& m);
  void OnPromoteRequest(const Message& m);
  // Opens a message the primary sealed; a refused one is counted, logged and
  // reported as a rejected event from `source`, and yields nothing.
  std::optional<Opened> OpenFromPrimary(const Message& m, const std::string& source);
  void Refuse(const Message& m, const std::string& source, const std::string& why);
  // `why` goes into the ack, the event and the status, so it names no
  // file; `detail` (which may) only into the log.
  void FailTransfer(const std::string& why, bool retry_plain, const std::string& detail = "");
  // Sealed under `via` (default: our channel), for `to` (default: the
  // primary we follow).
  void SendAck(const Ack& a, uint64_t transfer, SecureChannel* via = nullptr,
               const std::string& to = "");
  // SPEC 11: whether the opened message's (term, primary) may be followed:
  // a higher claim is stored and followed; a lower one is refused and its
  // sender told (kFenced).
  bool FollowTerm(const Message& m, const std::string& source, const EnvelopeHeader& h);
  // The channel with `primary`: the key that hub made for us when we hold
  // one (keyimport, SPEC 11), else the key agreed by pairing; null if none.
  SecureChannel* ChannelFor(const std::string& primary);
  // The channel with the primary we follow.
  SecureChannel* Following();
  bool HasStandbyKey() const;
  bool EnsureChannel();
  // Pairing as the backup (src/backup_pairing.cc): a round of hellos, the
  // welcomes it gets, the keys adopted, and its end (pair.result).
  Status StartPairing();
  void SendHello();
  void OnWelcome(const Message& m);
  void OnAdopted(const PairingRound::Adoption& a);
  void FinishRound();
  // Pairing as a standby: hellos from the hubs we would serve, and their
  // confirmations on their ack topics (heard once an offer is made).
  void OnStandbyHello(const Message& m);
  void OnStandbyConfirm(const std::string& backup, const Message& m);
  bool HearConfirmations();
  Status Rescan();
  // After manifest_ changed: its root and the status's counts.
  void Recount();
  void SetState(const std::string& state, const std::string& error = "");
  void PublishStatus();
  void Emit(Event e);
  void Log(LogLevel l, const std::string& s) { if (env_.log) env_.log(l, s); }

  EngineEnv env_;
  Topics topics_;
  PathFilter filter_;
  KeyStore keys_;
  std::unique_ptr<Scanner> scanner_;
  std::unique_ptr<Applier> applier_;
  std::unique_ptr<SecureChannel> channel_;
  Claim claim_;  // the highest (term, primary) seen: the primary we follow
  bool promoted_ = false;  // Promote succeeded: the primary engine takes over
  // The root the primary last said it holds (a request's, a delta's
  // target), kept in the record kAnnouncedRecord across restarts.
  std::optional<Digest> announced_root_;
  static constexpr char kAnnouncedRecord[] = "announced";
  void NoteAnnounced(const Digest& root);
  // Keys other hubs made for us (keys/<us>.from-<hub>), by that hub.
  std::map<std::string, std::unique_ptr<SecureChannel>> standby_;
  // Primaries found to have made no key for us (bounded; see ChannelFor).
  std::set<std::string> no_standby_;
  Outbox outbox_;
  BrokerLink link_, oob_link_;
  Manifest manifest_;
  bool manifest_valid_ = false;
  Digest root_{};
  int64_t files_ = 0;       // in manifest_ (for the status)
  uint64_t bytes_ = 0;
  Digest primary_root_{};   // from the last BEGIN
  std::string state_ = "behind";
  std::string error_;
  std::string due_;  // pending: when the primary's held changes are due
  int64_t behind_since_ms_ = 0;
  int64_t last_sync_ns_ = 0;
  int64_t next_status_ms_ = 0;
  int64_t resubscribe_at_ms_ = -1;  // >= 0: subscribing failed, try again then
  // Our subscriptions are granted on the current connection: nothing is
  // announced before (the connection alone is not enough).
  bool subscribed_ = false;
  int64_t next_key_log_ms_ = 0;
  uint32_t expected_chunk_ = 0;
  // The last manifest request answered: the sending process's session
  // (random per process) and the transfer.
  std::pair<uint64_t, uint64_t> answered_{0, 0};
  int64_t transfer_start_ms_ = 0;
  uint64_t transfer_wire_bytes_ = 0;
  uint64_t progress_total_ = 0;     // bytes the current delta ships (from BEGIN)
  uint64_t progress_files_total_ = 0, progress_files_done_ = 0;  // entries (BEGIN's count)
  int64_t last_progress_ms_ = 0;
  std::set<std::string> touched_;
  StatusAsks asks_;
  std::string last_status_;
  uint64_t rejected_ = 0;
  std::unique_ptr<PairingRound> round_;  // while pairing (no key yet, or a rotation)
  std::unique_ptr<PairingDesk> desk_;    // a standby's offers (config lists backups)
  bool confirmations_heard_ = false;     // subscribed to those backups' ack topics
  bool oob_up_ = false;
  int64_t next_hello_ms_ = 0;
};

}  // namespace hubsync

#endif  // HUBSYNC_ENGINE_H_
