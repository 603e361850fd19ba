// An in-process MQTT-like broker for engine tests: topic filters with + and
// #, retained messages, and delivery only when the test calls Pump(), so a
// test drives every engine from its own single thread, deterministically.
#ifndef HUBSYNC_TESTS_FAKE_TRANSPORT_H_
#define HUBSYNC_TESTS_FAKE_TRANSPORT_H_

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "hubsync/transport.h"

namespace hubsync {
namespace testing {

inline bool TopicMatches(const std::string& filter, const std::string& topic) {
  size_t f = 0, t = 0;
  while (f < filter.size()) {
    if (filter[f] == '#') return true;
    if (filter[f] == '+') {
      while (t < topic.size() && topic[t] != '/') ++t;
      ++f;
      continue;
    }
    if (t >= topic.size() || filter[f] != topic[t]) return false;
    ++f;
    ++t;
  }
  return t == topic.size();
}

// A transport with no broker behind it: keeps what is published, in order,
// or refuses it while `up` is false.
class RecordingTransport : public Transport {
 public:
  void SetHandlers(MessageHandler, ConnectionHandler) override {}
  Status Connect() override { return Status::Ok(); }
  Status Subscribe(const std::string&, int) override { return Status::Ok(); }
  Status Publish(const Message& m) override {
    if (!up) return Status::Unavailable("broker away");
    sent.push_back(m);
    return Status::Ok();
  }
  size_t InFlight() const override { return 0; }
  void Disconnect(const Message*) override {}
  bool up = true;
  std::vector<Message> sent;
};

class FakeBroker;

class FakeTransport : public Transport {
 public:
  FakeTransport(FakeBroker* broker) : broker_(broker) {}
  void SetHandlers(MessageHandler m, ConnectionHandler c) override {
    on_message_ = std::move(m);
    on_connection_ = std::move(c);
  }
  Status Connect() override;
  Status Subscribe(const std::string& filter, int) override;
  Status Publish(const Message& m) override;
  size_t InFlight() const override { return 0; }
  void Disconnect(const Message* final_message) override;

  MessageHandler on_message_;
  ConnectionHandler on_connection_;
  std::vector<std::string> filters_;
  bool connected_ = false;
  int refuse_subscribes = 0;  // the next N subscriptions are refused
  Message will_;

 private:
  FakeBroker* broker_;
};

class FakeBroker {
 public:
  std::unique_ptr<FakeTransport> NewClient() {
    auto t = std::make_unique<FakeTransport>(this);
    clients_.push_back(t.get());
    return t;
  }
  void Publish(const Message& m) {
    log_.push_back(m);
    if (m.retained) {
      if (m.payload.empty()) retained_.erase(m.topic);
      else retained_[m.topic] = m;
    }
    for (FakeTransport* c : clients_) {
      if (!c->connected_) continue;
      for (const auto& f : c->filters_) {
        if (TopicMatches(f, m.topic)) {
          queue_.push_back({c, m});
          break;
        }
      }
    }
  }
  void Subscribed(FakeTransport* c, const std::string& filter) {
    for (const auto& [topic, m] : retained_) {
      if (TopicMatches(filter, topic)) queue_.push_back({c, m});
    }
  }
  // Delivers queued messages (and whatever their handlers publish) until
  // nothing is left. Returns how many were delivered.
  int Pump() {
    int n = 0;
    while (!queue_.empty()) {
      auto [c, m] = queue_.front();
      queue_.pop_front();
      if (c->connected_ && c->on_message_) c->on_message_(m);
      ++n;
    }
    return n;
  }
  void Forget(FakeTransport* c) {
    queue_.erase(std::remove_if(queue_.begin(), queue_.end(),
                                [c](const auto& d) { return d.first == c; }),
                 queue_.end());
  }
  // Messages published on topics matching `filter` so far.
  int Count(const std::string& filter) const {
    int n = 0;
    for (const auto& m : log_) n += TopicMatches(filter, m.topic);
    return n;
  }
  const std::vector<Message>& log() const { return log_; }

 private:
  std::vector<FakeTransport*> clients_;
  std::deque<std::pair<FakeTransport*, Message>> queue_;
  std::map<std::string, Message> retained_;
  std::vector<Message> log_;
};

// A new session (clean start): no subscription and nothing queued survives.
inline Status FakeTransport::Connect() {
  filters_.clear();
  broker_->Forget(this);
  connected_ = true;
  if (on_connection_) on_connection_(LinkEvent::Up());
  return Status::Ok();
}
inline Status FakeTransport::Subscribe(const std::string& filter, int) {
  if (refuse_subscribes > 0) {
    --refuse_subscribes;
    return Status::Rejected("subscribe " + filter + ": the broker refused it (reason code 135)");
  }
  if (std::find(filters_.begin(), filters_.end(), filter) != filters_.end()) return Status::Ok();
  filters_.push_back(filter);
  broker_->Subscribed(this, filter);
  return Status::Ok();
}
inline Status FakeTransport::Publish(const Message& m) {
  if (!connected_) return Status::Unavailable("not connected");
  broker_->Publish(m);
  return Status::Ok();
}
inline void FakeTransport::Disconnect(const Message* final_message) {
  if (final_message) Publish(*final_message);
  connected_ = false;
}

}  // namespace testing
}  // namespace hubsync

#endif  // HUBSYNC_TESTS_FAKE_TRANSPORT_H_
