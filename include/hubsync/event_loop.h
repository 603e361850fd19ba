// The one thread on which a daemon's engine runs. Other threads (Paho's,
// inotify's, the signal thread) only Post work here, so engine state needs no
// locks.
#ifndef HUBSYNC_EVENT_LOOP_H_
#define HUBSYNC_EVENT_LOOP_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>

#include "hubsync/clock.h"

namespace hubsync {

class EventLoop {
 public:
  // What tasks still queued may carry, in bytes (messages from the network).
  static constexpr size_t kDefaultMaxQueuedBytes = 64u << 20;

  explicit EventLoop(Clock* clock, size_t max_queued_bytes = kDefaultMaxQueuedBytes)
      : clock_(clock), max_queued_bytes_(max_queued_bytes) {}
  // Thread-safe. Tasks run in the order posted.
  void Post(std::function<void()> task);
  // Thread-safe. A task that carries `bytes` of input (a received message):
  // refused (returns false, nothing queued) while the tasks already queued
  // carry more than the limit, so a flood faster than the engine works stays
  // bounded instead of growing the daemon. The protocol recovers what a drop
  // loses (timeouts, retries, retained statuses).
  bool PostBounded(size_t bytes, std::function<void()> task);
  uint64_t dropped() const;
  // Runs tasks until Stop(). After every batch of tasks and whenever the
  // deadline passes, calls `tick(now_ms)`, which returns the next deadline
  // (or INT64_MAX for none).
  void Run(const std::function<int64_t(int64_t)>& tick);
  void Stop();  // thread-safe; Run returns after the current task

 private:
  Clock* clock_;
  const size_t max_queued_bytes_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;  // guarded by mu_
  size_t queued_bytes_ = 0;                  // guarded by mu_
  uint64_t dropped_ = 0;                     // guarded by mu_
  bool stop_ = false;                        // guarded by mu_
};

}  // namespace hubsync

#endif  // HUBSYNC_EVENT_LOOP_H_
