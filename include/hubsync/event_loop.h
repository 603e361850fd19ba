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
  explicit EventLoop(Clock* clock) : clock_(clock) {}
  // Thread-safe. Tasks run in the order posted.
  void Post(std::function<void()> task);
  // Runs tasks until Stop(). After every batch of tasks and whenever the
  // deadline passes, calls `tick(now_ms)`, which returns the next deadline
  // (or INT64_MAX for none).
  void Run(const std::function<int64_t(int64_t)>& tick);
  void Stop();  // thread-safe; Run returns after the current task

 private:
  Clock* clock_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;  // guarded by mu_
  bool stop_ = false;                        // guarded by mu_
};

}  // namespace hubsync

#endif  // HUBSYNC_EVENT_LOOP_H_
