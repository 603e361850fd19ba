#include "hubsync/engine.h"

namespace hubsync {

void Outbox::Send(Message m) {
  if (queue_.empty() && t_->Publish(m).ok()) return;
  if (queue_.size() >= kMaxMessages) {
    ++dropped_;
    return;
  }
  queue_.push_back(std::move(m));
}

Status SubscribeAll(Transport* t, const std::vector<std::string>& filters) {
  for (const std::string& f : filters) HUBSYNC_RETURN_IF_ERROR(t->SubscribeAndWait(f, 1));
  return Status::Ok();
}

void SubscribeStatusAsk(Transport* t, const Topics& topics, const LogFn& log) {
  Status s = t->SubscribeAndWait(topics.StatusAsk(), 1);
  if (!s.ok() && log) {
    log(LogLevel::kWarn, "status requests will go unanswered (" + s.ToString() +
                             "): let this account read " + topics.StatusAsk());
  }
}

void Outbox::Flush() {
  while (!queue_.empty() && t_->Publish(queue_.front()).ok()) queue_.pop_front();
}

}  // namespace hubsync
