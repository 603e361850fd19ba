// The Clock seam. Engines read time only through it, so tests advance a
// ManualClock instead of sleeping.
#ifndef HUBSYNC_CLOCK_H_
#define HUBSYNC_CLOCK_H_

#include <atomic>
#include <cstdint>
#include <string>

namespace hubsync {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t NowMs() = 0;   // monotonic, for deadlines and durations
  virtual int64_t WallNs() = 0;  // real time, for timestamps shown to people
  // Names the boot NowMs counts in (a monotonic clock restarts with each
  // boot, so a deadline on it means nothing in another boot).
  virtual std::string BootId() = 0;
};

Clock* RealClock();  // process-wide, thread-safe

// A clock tests move by hand. Thread-safe.
class ManualClock : public Clock {
 public:
  explicit ManualClock(int64_t start_ms = 1000) : now_ms_(start_ms) {}
  int64_t NowMs() override { return now_ms_.load(); }
  int64_t WallNs() override { return 1'700'000'000'000'000'000 + now_ms_.load() * 1'000'000; }
  std::string BootId() override { return "manual-boot-" + std::to_string(boots_.load()); }
  void Advance(int64_t ms) { now_ms_ += ms; }
  // A new boot: the monotonic clock starts again at `start_ms`.
  void Reboot(int64_t start_ms = 1000) {
    ++boots_;
    now_ms_ = start_ms;
  }

 private:
  std::atomic<int64_t> now_ms_;
  std::atomic<int> boots_{0};
};

// "2026-11-25T01:02:03.456Z"
std::string FormatIso8601(int64_t wall_ns);

}  // namespace hubsync

#endif  // HUBSYNC_CLOCK_H_
