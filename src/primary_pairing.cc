// The primary's side of pairing (SPEC 6): hellos on the out-of-band topic,
// welcomes (PairingDesk), and the confirmation over the LAN that installs a
// key.
#include <algorithm>

#include "hubsync/engine.h"
#include "sync_session.h"

namespace hubsync {

bool PrimaryEngine::MayPair(const std::string& b, std::string* why) {
  if (PairingWindowOpen(*env_.state, env_.clock->NowMs(), env_.clock->BootId())) return true;
  bool listed = std::find(env_.config.backups.begin(), env_.config.backups.end(), b) !=
                env_.config.backups.end();
  if (!listed) {
    *why = "not in this primary's backups and no pairing window is open";
    return false;
  }
  if (IsRevoked(*env_.state, b)) {
    *why = "revoked (hubsync unpair); open a pairing window to admit it again";
    return false;
  }
  return true;
}

void PrimaryEngine::OnOobConnection(const LinkEvent& e) {
  oob_link_.Report(e);
  if (e.up()) env_.oob->Subscribe(topics_.prefix + "oob/+/hello", 1);
}

std::optional<PairHello> CheckedHello(const Topics& topics, const Message& m,
                                      const std::string& self, const LogFn& log,
                                      const std::function<void(Event)>& emit) {
  auto hello = DecodePairHello(m.payload);
  if (hello.ok() && m.topic != topics.Hello(hello->backup)) {
    hello = Status::Rejected("hello names another backup than its topic");
  }
  if (hello.ok()) return std::move(hello).value();
  if (log) log(LogLevel::kWarn, "refused a pairing hello: " + hello.status().message());
  emit(RejectedEvent(self, "hello", hello.status().message(), m.payload.size()));
  return std::nullopt;
}

void AnswerWithDesk(PairingDesk& desk, const PairHello& hello, Transport* oob,
                    const Topics& topics, const std::string& self, bool standby, int64_t now_ms,
                    const LogFn& log, const std::function<void(Event)>& emit) {
  const std::string& b = hello.backup;
  std::string what = standby ? "standby pairing with " : "pairing with ";
  auto welcome = desk.OnHello(hello, now_ms);
  if (!welcome.ok()) {
    if (log) log(LogLevel::kWarn, "refused " + what + b + ": " + welcome.status().message());
    emit(Event{"pairing", self, {}, {{"backup", b}, {"result", "refused"},
                                     {"reason", welcome.status().message()}}});
    return;
  }
  Message w;
  w.topic = topics.Welcome(b);
  w.payload = welcome->payload;
  if (!w.payload.empty()) oob->Publish(w);
  if (welcome->repeated) return;
  if (log) {
    log(LogLevel::kInfo, what + b + ": welcome sent for key epoch " +
                             std::to_string(welcome->epoch) + ", waiting for its confirmation");
  }
  Event offered{"pairing", self, {{"epoch", welcome->epoch}}, {{"backup", b}, {"result", "offered"}}};
  if (standby) offered.fields["standby"] = "yes";
  emit(std::move(offered));
}

void PrimaryEngine::OnOobMessage(const Message& m) {
  auto hello = CheckedHello(topics_, m, env_.config.gateway_id, env_.log,
                            [this](Event e) { Emit(std::move(e)); });
  if (!hello) return;
  const std::string& b = hello->backup;
  std::string why;
  if (!MayPair(b, &why)) {
    Log(LogLevel::kWarn, "refused pairing with " + b + ": " + why);
    Emit(Event{"pairing", env_.config.gateway_id, {}, {{"backup", b}, {"result", "refused"},
                                                       {"reason", why}}});
    return;
  }
  AnswerWithDesk(desk_, *hello, env_.oob, topics_, env_.config.gateway_id, false,
                 env_.clock->NowMs(), env_.log, [this](Event e) { Emit(std::move(e)); });
}

bool PrimaryEngine::TryConfirm(const std::string& b, const Message& m) {
  auto confirmed = desk_.OnConfirm(b, m.payload, env_.clock->NowMs());
  if (confirmed.status().code() == Status::Code::kNotFound) return false;  // any other ack
  if (!confirmed.ok()) {
    Log(LogLevel::kWarn, "key confirmation from " + b + " failed: " + confirmed.status().ToString());
    return true;
  }
  uint32_t epoch = *confirmed;
  bool by_window = std::find(env_.config.backups.begin(), env_.config.backups.end(), b) ==
                   env_.config.backups.end();
  if (Status admitted = Admit(env_.state, b, by_window); !admitted.ok()) {
    Log(LogLevel::kWarn, "cannot record the admission of " + b + ": " + admitted.ToString());
  }
  SyncSession* session = FindPeer(b);
  if (!session) session = &AddPeer(b);
  session->Paired();
  Log(LogLevel::kInfo, "paired with " + b + " (key epoch " + std::to_string(epoch) + ")");
  Emit(Event{"pairing", env_.config.gateway_id, {{"epoch", epoch}},
             {{"backup", b}, {"result", "confirmed"}}});
  return true;
}

}  // namespace hubsync
