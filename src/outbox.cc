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

void Outbox::Flush() {
  while (!queue_.empty() && t_->Publish(queue_.front()).ok()) queue_.pop_front();
}

}  // namespace hubsync
