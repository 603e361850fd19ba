// The Crypto++ adapter. Every Crypto++ exception is caught here.
#include <cryptopp/aes.h>
#include <cryptopp/gcm.h>
#include <cryptopp/osrng.h>
#include <cryptopp/sha.h>

#include "hubsync/crypto.h"

namespace hubsync {

struct Sha256::Impl {
  CryptoPP::SHA256 h;
};
Sha256::Sha256() : impl_(new Impl) {}
Sha256::~Sha256() = default;
void Sha256::Update(const void* data, size_t n) {
  impl_->h.Update(static_cast<const CryptoPP::byte*>(data), n);
}
Digest Sha256::Final() {
  Digest d;
  impl_->h.Final(d.data());
  return d;
}

Digest Sha256Of(std::string_view data) {
  Sha256 h;
  h.Update(data);
  return h.Final();
}

std::string ToHex(const uint8_t* data, size_t n) {
  static const char kHex[] = "0123456789abcdef";
  std::string s(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    s[2 * i] = kHex[data[i] >> 4];
    s[2 * i + 1] = kHex[data[i] & 15];
  }
  return s;
}

bool FromHex(std::string_view hex, uint8_t* out, size_t n) {
  if (hex.size() != 2 * n) return false;
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < n; ++i) {
    int hi = nib(hex[2 * i]), lo = nib(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

Status RandomBytes(uint8_t* out, size_t n) {
  try {
    CryptoPP::OS_GenerateRandomBlock(false, out, n);
    return Status::Ok();
  } catch (const CryptoPP::Exception& e) {
    return Status::IoError(std::string("random: ") + e.what());
  }
}

struct AesGcm::Impl {
  CryptoPP::GCM<CryptoPP::AES, CryptoPP::GCM_64K_Tables>::Encryption enc;
  CryptoPP::GCM<CryptoPP::AES, CryptoPP::GCM_64K_Tables>::Decryption dec;
};

AesGcm::AesGcm(const Key& key) : impl_(new Impl) {
  const uint8_t zero_iv[kNonceBytes] = {};
  impl_->enc.SetKeyWithIV(key.data(), key.size(), zero_iv, sizeof zero_iv);
  impl_->dec.SetKeyWithIV(key.data(), key.size(), zero_iv, sizeof zero_iv);
}
AesGcm::~AesGcm() = default;

Status AesGcm::Seal(const uint8_t nonce[kNonceBytes], std::string_view ad, std::string_view plain,
                    std::string* out) {
  try {
    size_t base = out->size();
    out->resize(base + plain.size() + kTagBytes);
    auto* dst = reinterpret_cast<CryptoPP::byte*>(&(*out)[base]);
    impl_->enc.EncryptAndAuthenticate(
        dst, dst + plain.size(), kTagBytes, nonce, kNonceBytes,
        reinterpret_cast<const CryptoPP::byte*>(ad.data()), ad.size(),
        reinterpret_cast<const CryptoPP::byte*>(plain.data()), plain.size());
    return Status::Ok();
  } catch (const CryptoPP::Exception& e) {
    return Status::IoError(std::string("seal: ") + e.what());
  }
}

Status AesGcm::Open(const uint8_t nonce[kNonceBytes], std::string_view ad, std::string_view sealed,
                    std::string* out) {
  if (sealed.size() < kTagBytes) return Status::Corruption("sealed message too short");
  size_t n = sealed.size() - kTagBytes;
  try {
    out->resize(n);
    const auto* src = reinterpret_cast<const CryptoPP::byte*>(sealed.data());
    bool ok = impl_->dec.DecryptAndVerify(
        reinterpret_cast<CryptoPP::byte*>(out->data()), src + n, kTagBytes, nonce, kNonceBytes,
        reinterpret_cast<const CryptoPP::byte*>(ad.data()), ad.size(), src, n);
    if (!ok) return Status::Corruption("authentication tag mismatch");
    return Status::Ok();
  } catch (const CryptoPP::Exception& e) {
    return Status::Corruption(std::string("open: ") + e.what());
  }
}

}  // namespace hubsync
