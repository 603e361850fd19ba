#include "hubsync/event_loop.h"

#include <chrono>
#include <climits>
#include <ctime>
#include <fstream>

namespace hubsync {
namespace {

class SystemClock : public Clock {
 public:
  int64_t NowMs() override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  int64_t WallNs() override {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  // The kernel's id for this boot; "unknown" where it cannot be read (then a
  // pairing window never survives to be checked against another boot's id).
  std::string BootId() override {
    static const std::string id = [] {
      std::ifstream in("/proc/sys/kernel/random/boot_id");
      std::string line;
      std::getline(in, line);
      return line.empty() ? std::string("unknown") : line;
    }();
    return id;
  }
};

}  // namespace

Clock* RealClock() {
  static SystemClock clock;
  return &clock;
}

std::string FormatIso8601(int64_t wall_ns) {
  time_t secs = static_cast<time_t>(wall_ns / 1000000000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[40];
  size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>((wall_ns / 1000000) % 1000));
  return buf;
}

void EventLoop::Post(std::function<void()> task) {
  std::lock_guard<std::mutex> l(mu_);
  tasks_.push_back(std::move(task));
  cv_.notify_one();
}

bool EventLoop::PostBounded(size_t bytes, std::function<void()> task) {
  std::lock_guard<std::mutex> l(mu_);
  if (queued_bytes_ + bytes > max_queued_bytes_) {
    ++dropped_;
    return false;
  }
  queued_bytes_ += bytes;
  tasks_.push_back([this, bytes, task = std::move(task)] {
    {
      std::lock_guard<std::mutex> l(mu_);
      queued_bytes_ -= bytes;
    }
    task();
  });
  cv_.notify_one();
  return true;
}

uint64_t EventLoop::dropped() const {
  std::lock_guard<std::mutex> l(mu_);
  return dropped_;
}

void EventLoop::Stop() {
  std::lock_guard<std::mutex> l(mu_);
  stop_ = true;
  cv_.notify_one();
}

void EventLoop::Run(const std::function<int64_t(int64_t)>& tick) {
  int64_t deadline = tick(clock_->NowMs());
  while (true) {
    std::deque<std::function<void()>> batch;
    {
      std::unique_lock<std::mutex> l(mu_);
      while (!stop_ && tasks_.empty()) {
        int64_t now = clock_->NowMs();
        if (now >= deadline) break;
        if (deadline == INT64_MAX) {
          cv_.wait(l);
        } else {
          cv_.wait_for(l, std::chrono::milliseconds(deadline - now));
        }
      }
      if (stop_) return;
      batch.swap(tasks_);
    }
    for (auto& t : batch) t();
    deadline = tick(clock_->NowMs());
  }
}

}  // namespace hubsync
