// The Crypto++ adapter. Every Crypto++ exception is caught here.
#include <cryptopp/aes.h>
#include <cryptopp/gcm.h>
#include <cryptopp/hkdf.h>
#include <cryptopp/xed25519.h>
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

Result<X25519KeyPair> GenerateX25519() {
  try {
    CryptoPP::AutoSeededRandomPool rng;
    CryptoPP::x25519 ecdh;
    X25519KeyPair kp;
    ecdh.GenerateKeyPair(rng, kp.secret.data(), kp.pub.data());
    return kp;
  } catch (const CryptoPP::Exception& e) {
    return Status::IoError(std::string("x25519 keygen: ") + e.what());
  }
}

Result<Key> X25519Agree(const Key& secret, const X25519Public& peer) {
  try {
    CryptoPP::x25519 ecdh;
    Key shared{};
    if (!ecdh.Agree(shared.data(), secret.data(), peer.data(), true)) {
      return Status::Rejected("invalid X25519 public key");
    }
    uint8_t any = 0;
    for (uint8_t b : shared) any |= b;
    if (any == 0) return Status::Rejected("low-order X25519 public key");
    return shared;
  } catch (const CryptoPP::Exception& e) {
    return Status::Rejected(std::string("x25519: ") + e.what());
  }
}

Key HkdfSha256(std::string_view ikm, std::string_view salt, std::string_view info) {
  CryptoPP::HKDF<CryptoPP::SHA256> hkdf;
  Key out{};
  hkdf.DeriveKey(out.data(), out.size(), reinterpret_cast<const CryptoPP::byte*>(ikm.data()),
                 ikm.size(),
                 reinterpret_cast<const CryptoPP::byte*>(salt.data()), salt.size(),
                 reinterpret_cast<const CryptoPP::byte*>(info.data()), info.size());
  return out;
}

Key DerivePairKey(const Key& shared, const X25519Public& backup_pub,
                  const X25519Public& primary_pub, const std::string& home,
                  const std::string& backup) {
  std::string salt(reinterpret_cast<const char*>(backup_pub.data()), backup_pub.size());
  salt.append(reinterpret_cast<const char*>(primary_pub.data()), primary_pub.size());
  std::string info = "hubsync v1 pair key";
  info.push_back(static_cast<char>(home.size()));
  info += home;
  info.push_back(static_cast<char>(backup.size()));
  info += backup;
  return HkdfSha256(std::string_view(reinterpret_cast<const char*>(shared.data()), shared.size()),
                    salt, info);
}

}  // namespace hubsync
