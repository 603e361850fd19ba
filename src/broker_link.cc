#include <algorithm>

#include "hubsync/engine.h"

namespace hubsync {

BrokerLink::BrokerLink(std::string name, const Config& config, Clock* clock, LogFn log)
    : name_(std::move(name)),
      configured_(static_cast<size_t>(config.max_message_bytes)),
      clock_(clock),
      log_(std::move(log)),
      message_bytes_(configured_) {}

void BrokerLink::Log(LogLevel level, const std::string& line) {
  if (log_) log_(level, line);
}

void BrokerLink::Report(const LinkEvent& e) {
  int64_t now = clock_->NowMs();
  if (e.up()) {
    std::string line = "connected to " + name_;
    if (first_failure_ms_ >= 0 && failures_ > 0) {
      line += " after " + std::to_string(failures_) + " failed attempt" +
              (failures_ == 1 ? "" : "s") + " over " +
              std::to_string((now - first_failure_ms_ + 500) / 1000) + " s";
    }
    if (e.max_packet_bytes > 0 || e.receive_maximum > 0) {
      line += " (it takes packets up to " +
              (e.max_packet_bytes ? std::to_string(e.max_packet_bytes) + " bytes" : "any size") +
              ", " + (e.receive_maximum ? std::to_string(e.receive_maximum) : "any number of") +
              " unacknowledged)";
    }
    Log(LogLevel::kInfo, line);
    first_failure_ms_ = -1;
    failures_ = unreported_ = 0;
    last_reason_.clear();
    repeat_gap_ms_ = kFirstRepeatMs;
    if (e.max_packet_bytes > 0) {
      size_t fits = e.max_packet_bytes > kPacketOverhead ? e.max_packet_bytes - kPacketOverhead : 0;
      size_t want = std::max(kMinMessageBytes, std::min(message_bytes_, fits));
      if (fits < kMinMessageBytes) {
        Log(LogLevel::kError, "the broker takes packets of at most " +
                                   std::to_string(e.max_packet_bytes) + " bytes; hubsync needs " +
                                   std::to_string(kMinMessageBytes + kPacketOverhead) +
                                   ": raise the broker's limit (Mosquitto: max_packet_size)");
      } else if (want < message_bytes_) {
        Log(LogLevel::kWarn, "the broker takes packets of at most " +
                                  std::to_string(e.max_packet_bytes) + " bytes: messages of " +
                                  std::to_string(want) + " bytes instead of max_message_bytes " +
                                  std::to_string(configured_));
      }
      message_bytes_ = want;
    }
    return;
  }
  if (e.kind == LinkEvent::Kind::kDropped) {
    Log(LogLevel::kWarn, "lost " + name_ + ": " + e.reason + "; reconnecting");
    bool too_large = e.disconnect_code == kPacketTooLarge;
    // Only drops in a row, each with a large message in flight and none as
    // large through on that connection, point at a size limit.
    size_t large = message_bytes_ * 3 / 4;
    strikes_ = e.largest_acked < large && e.largest_unacked >= large ? strikes_ + 1 : 0;
    if ((too_large || strikes_ >= 2) && message_bytes_ > kMinMessageBytes) {
      size_t lower = std::max(kMinMessageBytes, message_bytes_ / 2);
      Log(LogLevel::kWarn,
           std::string(too_large ? "the broker refused a packet as too large"
                                 : "the broker dropped the connection twice on our largest messages") +
               " without announcing a limit: messages of " + std::to_string(lower) +
               " bytes from now on instead of " + std::to_string(message_bytes_) +
               " (set max_message_bytes below the broker's limit to avoid this)");
      message_bytes_ = lower;
      strikes_ = 0;
    }
    first_failure_ms_ = now;
    return;
  }
  Failed(e.reason);
}

void BrokerLink::Failed(const std::string& reason) {
  int64_t now = clock_->NowMs();
  if (first_failure_ms_ < 0) first_failure_ms_ = now;
  ++failures_;
  if (reason != last_reason_) {
    Log(LogLevel::kWarn, "cannot connect: " + reason);
    last_reason_ = reason;
    unreported_ = 0;
    repeat_gap_ms_ = kFirstRepeatMs;
    next_repeat_ms_ = now + repeat_gap_ms_;
    return;
  }
  ++unreported_;
  if (now < next_repeat_ms_) return;
  Log(LogLevel::kWarn, "still cannot connect: " + reason + " (" + std::to_string(unreported_) +
                            " more failed attempt" + (unreported_ == 1 ? "" : "s") + ")");
  unreported_ = 0;
  repeat_gap_ms_ = std::min(kMaxRepeatMs, repeat_gap_ms_ * 2);
  next_repeat_ms_ = now + repeat_gap_ms_;
}

bool StatusAsks::OnAsk(int64_t now) {
  if (now >= next_ms_) {
    next_ms_ = now + kGapMs;
    return true;
  }
  deferred_ = true;
  return false;
}

bool StatusAsks::Due(int64_t now) {
  if (!deferred_ || now < next_ms_) return false;
  deferred_ = false;
  next_ms_ = now + kGapMs;
  return true;
}

}  // namespace hubsync
