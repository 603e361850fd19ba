#include "hubsync/bridge_protocol.h"

#include "hubsync/crypto.h"
#include "hubsync/wire.h"

namespace hubsync {
namespace {

constexpr uint8_t kData = 1;
constexpr uint8_t kAck = 2;

std::string Header(uint8_t type, uint32_t id, uint16_t index, uint16_t count, uint32_t total) {
  std::string h;
  WireWriter w(&h);
  w.U8(type);
  w.U32(id);
  w.U16(index);
  w.U16(count);
  w.U32(total);
  return h;
}

}  // namespace

BridgeProtocol::BridgeProtocol(BridgeLimits limits) : limits_(limits) {
  // A random first id: after a restart, the peer's duplicate window must not
  // mistake new messages for old ones.
  uint8_t b[4] = {};
  RandomBytes(b, sizeof b);
  next_id_ = static_cast<uint32_t>(b[0]) << 24 | b[1] << 16 | b[2] << 8 | b[3];
}

std::string BridgeProtocol::Ack(uint32_t id) const { return Header(kAck, id, 0, 0, 0); }

Result<std::vector<std::string>> BridgeProtocol::Send(std::string_view message, int64_t now_ms) {
  if (limits_.mtu <= kFrameHeaderBytes) return Status::InvalidArgument("link MTU too small");
  if (message.size() > limits_.max_message) return Status::InvalidArgument("message too large");
  size_t room = limits_.mtu - kFrameHeaderBytes;
  size_t count = message.empty() ? 1 : (message.size() + room - 1) / room;
  if (count > 0xffff) return Status::InvalidArgument("message needs too many frames");
  uint32_t id = next_id_++;
  Outgoing o;
  o.sent_ms = now_ms;
  for (size_t i = 0; i < count; ++i) {
    std::string f = Header(kData, id, static_cast<uint16_t>(i), static_cast<uint16_t>(count),
                           static_cast<uint32_t>(message.size()));
    f.append(message.substr(i * room, room));
    o.frames.push_back(std::move(f));
  }
  std::vector<std::string> out = o.frames;
  pending_[id] = std::move(o);
  return out;
}

Status BridgeProtocol::OnFrame(std::string_view frame, int64_t now_ms,
                               std::vector<std::string>* out,
                               std::vector<std::string>* delivered) {
  WireReader r(frame);
  uint8_t type;
  uint32_t id, total;
  uint16_t index, count;
  if (!r.U8(&type) || !r.U32(&id) || !r.U16(&index) || !r.U16(&count) || !r.U32(&total)) {
    ++malformed_;
    return Status::Corruption("short frame");
  }
  if (type == kAck) {
    pending_.erase(id);
    return Status::Ok();
  }
  size_t room = limits_.mtu - kFrameHeaderBytes;
  std::string_view body = frame.substr(kFrameHeaderBytes);
  // Every frame's size follows from total and index: nothing is ambiguous.
  size_t expected_count = total == 0 ? 1 : (total + room - 1) / room;
  bool ok = type == kData && total <= limits_.max_message && count == expected_count &&
            index < count;
  if (ok) {
    size_t expected_body = index + 1 < count ? room : total - static_cast<size_t>(index) * room;
    ok = body.size() == expected_body;
  }
  if (!ok) {
    ++malformed_;
    return Status::Corruption("bad frame");
  }
  if (delivered_.count(id)) {
    ++duplicates_;
    out->push_back(Ack(id));  // our ack may have been lost
    return Status::Ok();
  }
  auto it = partial_.find(id);
  if (it == partial_.end()) {
    if (partial_.size() >= limits_.max_partial) {
      // Make room by dropping the oldest partial message.
      auto oldest = partial_.begin();
      for (auto p = partial_.begin(); p != partial_.end(); ++p) {
        if (p->second.started_ms < oldest->second.started_ms) oldest = p;
      }
      partial_.erase(oldest);
      ++dropped_;
    }
    Partial p;
    p.count = count;
    p.total = total;
    p.started_ms = now_ms;
    it = partial_.emplace(id, std::move(p)).first;
  }
  Partial& p = it->second;
  if (p.count != count || p.total != total) {
    ++malformed_;
    partial_.erase(it);
    return Status::Corruption("frames of one message disagree");
  }
  if (p.parts.count(index)) {
    ++duplicates_;
    return Status::Ok();
  }
  p.bytes += body.size();
  if (p.bytes > p.total) {
    ++malformed_;
    partial_.erase(it);
    return Status::Corruption("message longer than announced");
  }
  p.parts.emplace(index, std::string(body));
  if (p.parts.size() < p.count) return Status::Ok();
  if (p.bytes != p.total) {
    ++malformed_;
    partial_.erase(it);
    return Status::Corruption("message shorter than announced");
  }
  std::string message;
  message.reserve(p.total);
  for (auto& [i, part] : p.parts) message += part;
  partial_.erase(it);
  delivered_.insert(id);
  delivered_order_.push_back(id);
  if (delivered_order_.size() > limits_.dedup_window) {
    delivered_.erase(delivered_order_.front());
    delivered_order_.pop_front();
  }
  out->push_back(Ack(id));
  delivered->push_back(std::move(message));
  return Status::Ok();
}

std::vector<std::string> BridgeProtocol::Tick(int64_t now_ms) {
  std::vector<std::string> out;
  for (auto it = partial_.begin(); it != partial_.end();) {
    if (now_ms - it->second.started_ms > limits_.reassembly_timeout_ms) {
      ++dropped_;
      it = partial_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = pending_.begin(); it != pending_.end();) {
    Outgoing& o = it->second;
    if (now_ms - o.sent_ms < limits_.retransmit_ms) {
      ++it;
      continue;
    }
    if (o.retries >= limits_.max_retries) {
      ++dropped_;
      it = pending_.erase(it);
      continue;
    }
    ++o.retries;
    o.sent_ms = now_ms;
    out.insert(out.end(), o.frames.begin(), o.frames.end());
    ++it;
  }
  return out;
}

void BridgeProtocol::OnDisconnect() { partial_.clear(); }

std::vector<std::string> BridgeProtocol::Reconnected(int64_t now_ms) {
  std::vector<std::string> out;
  for (auto& [id, o] : pending_) {
    o.sent_ms = now_ms;
    out.insert(out.end(), o.frames.begin(), o.frames.end());
  }
  return out;
}

std::string EncodeBridgeMessage(const std::string& topic, std::string_view payload) {
  std::string m;
  WireWriter w(&m);
  w.Str(topic);
  m.append(payload);
  return m;
}

Status DecodeBridgeMessage(std::string_view m, std::string* topic, std::string* payload) {
  WireReader r(m);
  if (!r.Str(topic) || topic->empty()) return Status::Corruption("bad bridge message");
  payload->assign(m.substr(2 + topic->size()));
  return Status::Ok();
}

}  // namespace hubsync
