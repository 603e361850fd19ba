// Pairing on a backup (SPEC 6, 11): as the backup, a round of hellos whose
// welcomes (from the primary, and from each standby that would serve us)
// give candidate keys, adopted once their maker proves them; as a standby,
// the answers to the hellos of the hubs this one would serve if promoted.
#include <algorithm>

#include "hubsync/engine.h"

namespace hubsync {

Status BackupEngine::StartPairing() {
  auto round = PairingRound::Create(env_.state, env_.config.home, env_.config.gateway_id);
  if (!round.ok()) return round.status();
  round_ = std::make_unique<PairingRound>(std::move(round).value());
  round_->set_limits(static_cast<size_t>(env_.config.max_message_bytes), env_.config.compress);
  next_hello_ms_ = 0;
  return Status::Ok();
}

void BackupEngine::RotateKey() {
  if (!env_.oob) {
    Log(LogLevel::kWarn, "asked to rotate the key, but oob.uri is not configured");
    return;
  }
  Status s = StartPairing();
  if (!s.ok()) {
    Log(LogLevel::kError, "cannot start pairing: " + s.ToString());
    return;
  }
  Log(LogLevel::kInfo, "rotating the key: pairing over the out-of-band topic");
}

void BackupEngine::OnOobConnection(const LinkEvent& e) {
  oob_link_.Report(e);
  oob_up_ = e.up();
  if (!oob_up_) return;
  env_.oob->Subscribe(topics_.Welcome(env_.config.gateway_id), 1);
  if (desk_) env_.oob->Subscribe(topics_.prefix + "oob/+/hello", 1);
  next_hello_ms_ = 0;
}

void BackupEngine::SendHello() {
  Message m;
  m.topic = topics_.Hello(env_.config.gateway_id);
  m.payload = EncodePairHello(round_->hello());
  if (env_.oob->Publish(m).ok()) Log(LogLevel::kDebug, "pairing hello sent");
}

void BackupEngine::OnOobMessage(const Message& m) {
  if (m.topic == topics_.Welcome(env_.config.gateway_id)) return OnWelcome(m);
  if (desk_) OnStandbyHello(m);
}

void BackupEngine::OnWelcome(const Message& m) {
  if (!round_) return;
  auto w = DecodePairWelcome(m.payload);
  if (w.ok() && w->backup != env_.config.gateway_id) {
    w = Status::Rejected("a welcome for " + w->backup);
  }
  if (!w.ok()) {
    Log(LogLevel::kWarn, "refused a pairing welcome: " + w.status().message());
    Emit(RejectedEvent(env_.config.gateway_id, "welcome", w.status().message(),
                       m.payload.size()));
    return;
  }
  auto confirmation = round_->OnWelcome(*w, claim_.term, env_.clock->NowMs());
  if (!confirmation.ok()) {
    if (confirmation.status().code() == Status::Code::kRejected) {
      Log(LogLevel::kWarn, "refused a pairing welcome: " + confirmation.status().message());
      Emit(RejectedEvent(env_.config.gateway_id, "welcome", confirmation.status().message(),
                         m.payload.size()));
    } else {
      Log(LogLevel::kError, "cannot use the key derived with " + w->primary + ": " +
                                confirmation.status().ToString());
    }
    return;
  }
  if (!*confirmation) return;  // the same welcome again
  const PairingRound::Confirmation& c = **confirmation;
  // Anyone on this hub's OOB listener may answer a hello, so the derived
  // key is only a candidate: it is confirmed over the LAN (sealed under it;
  // its maker installs it only if it derived the same) and adopted when its
  // maker proves it on our own request or delta topic, which only a
  // primary's (or a standby's) account may write.
  Message out;
  out.topic = topics_.Ack(env_.config.gateway_id);
  out.payload = c.sealed;
  outbox_.Send(std::move(out));
  Log(LogLevel::kInfo, "derived key epoch " + std::to_string(c.epoch) + " with " + c.maker +
                           (c.standby ? " (a standby)" : "") +
                           "; confirmation sent, waiting for its proof");
  Emit(Event{"pairing", env_.config.gateway_id, {{"epoch", c.epoch}},
             {{"primary", c.maker}, {"result", "derived"}, {"standby", c.standby ? "yes" : "no"}}});
}

void BackupEngine::OnAdopted(const PairingRound::Adoption& a) {
  if (!a.standby) {
    channel_.reset();
    EnsureChannel();
  }
  standby_.erase(a.maker);
  no_standby_.erase(a.maker);
  if (a.standby) {
    Log(LogLevel::kInfo, "paired with standby " + a.maker + ": key epoch " +
                             std::to_string(a.key.epoch) + " adopted (it serves us if promoted)");
  } else {
    Log(LogLevel::kInfo, "paired: key epoch " + std::to_string(a.key.epoch) +
                             " adopted, the primary proved it holds it");
  }
  Emit(Event{"pairing", env_.config.gateway_id, {{"epoch", a.key.epoch}},
             {{"primary", a.maker}, {"result", "adopted"}, {"standby", a.standby ? "yes" : "no"}}});
  PublishStatus();
}

void BackupEngine::FinishRound() {
  std::string summary = round_->Summary();
  round_.reset();
  Log(LogLevel::kInfo, "pairing done: " + summary);
  // For `hubsync pair`, which asked for this round (SIGUSR2) and waits.
  Status s = env_.state->Put(kPairResult, "ok " + summary + "\n");
  if (!s.ok()) Log(LogLevel::kWarn, "cannot record the pairing's result: " + s.ToString());
}

void BackupEngine::OnStandbyHello(const Message& m) {
  auto hello = CheckedHello(topics_, m, env_.config.gateway_id, env_.log,
                            [this](Event e) { Emit(std::move(e)); });
  if (!hello) return;
  const std::string& b = hello->backup;
  if (b == env_.config.gateway_id) return;  // our own, back from the broker
  const auto& served = env_.config.backups;
  if (std::find(served.begin(), served.end(), b) == served.end()) {
    Log(LogLevel::kDebug, "a pairing hello from " + b + ", which this hub would not serve");
    return;
  }
  // Its confirmation comes on its ack topic: heard before it is invited.
  if (!HearConfirmations()) return;
  AnswerWithDesk(*desk_, *hello, env_.oob, topics_, env_.config.gateway_id, true,
                 env_.clock->NowMs(), env_.log, [this](Event e) { Emit(std::move(e)); });
}

bool BackupEngine::HearConfirmations() {
  if (confirmations_heard_) return true;
  std::vector<std::string> filters;
  for (const std::string& b : env_.config.backups) filters.push_back(topics_.Ack(b));
  Status s = SubscribeAll(env_.transport, filters);
  if (!s.ok()) {
    Log(LogLevel::kWarn, "cannot hear standby key confirmations (" + s.ToString() +
                             "): a standby's broker account needs a primary's rights "
                             "(make-passwords.sh --standby)");
    return false;
  }
  confirmations_heard_ = true;
  return true;
}

void BackupEngine::OnStandbyConfirm(const std::string& b, const Message& m) {
  auto confirmed = desk_->OnConfirm(b, m.payload, env_.clock->NowMs());
  if (confirmed.status().code() == Status::Code::kNotFound) return;  // its acks to its primary
  if (!confirmed.ok()) {
    Log(LogLevel::kWarn, "standby key confirmation from " + b + " failed: " +
                             confirmed.status().ToString());
    return;
  }
  // Our proof that we hold it, sealed under it on b's request topic; the
  // key's counters are the ones this hub uses once promoted.
  auto proof = [&]() -> Result<std::string> {
    auto ch = SecureChannel::Create(env_.state, env_.config.home, b, true);
    if (!ch.ok()) return ch.status();
    (*ch)->set_primary(env_.config.gateway_id);
    (*ch)->set_term(claim_.term);
    return SealKeyProof(ch->get());
  }();
  if (!proof.ok()) {
    Log(LogLevel::kError, "cannot prove the standby key with " + b + ": " +
                              proof.status().ToString());
    return;
  }
  Message out;
  out.topic = topics_.ManifestReq(b);
  out.payload = std::move(proof).value();
  outbox_.Send(std::move(out));
  Log(LogLevel::kInfo, "standby key with " + b + " (epoch " + std::to_string(*confirmed) +
                           ") stored: this hub serves it if promoted");
  Emit(Event{"pairing", env_.config.gateway_id, {{"epoch", *confirmed}},
             {{"backup", b}, {"result", "confirmed"}, {"standby", "yes"}}});
}

}  // namespace hubsync
