#include "hubsync/state_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hubsync/keystore.h"
#include "test_util.h"

namespace hubsync {
namespace {

using testing::TempDir;

TEST(StateStoreTest, NamesAreOneOrTwoPlainComponents) {
  for (const char* ok : {"pairing-window", "keys/hub-b1.key", "counters/hub-b1.e3.rx", "manifest.cache"}) {
    EXPECT_TRUE(StateStore::ValidName(ok)) << ok;
  }
  for (const char* bad : {"", "lock", ".hidden", "keys/", "/keys/x", "keys/../x", "a/b/c", "keys/.x",
                          "keys//x", "sp ace", "new\nline", "keys/..", "ä"}) {
    EXPECT_FALSE(StateStore::ValidName(bad)) << bad;
  }
  MemoryStateStore m;
  TempDir posix_dir;  // the store in a subdirectory, so an escape lands in posix_dir
  testing::MkdirP(posix_dir.Sub("state"));
  auto p = NewPosixStateStore(posix_dir.Sub("state"));
  for (StateStore* s : {static_cast<StateStore*>(&m), p.get()}) {
    EXPECT_EQ(s->Put("../escape", "x").code(), Status::Code::kInvalidArgument);
    EXPECT_EQ(s->Get("a/b/c").status().code(), Status::Code::kInvalidArgument);
    EXPECT_EQ(s->Overwrite("lock", "x").code(), Status::Code::kInvalidArgument);
  }
  EXPECT_NE(access(posix_dir.Sub("escape").c_str(), F_OK), 0);
}

// The same contract on disk and in memory.
class BothStoresTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam()) {
      store_ = NewPosixStateStore(dir_.path());
    } else {
      store_ = std::make_unique<MemoryStateStore>();
    }
  }
  TempDir dir_;
  std::unique_ptr<StateStore> store_;
};

TEST_P(BothStoresTest, PutGetListRemove) {
  StateStore& s = *store_;
  EXPECT_EQ(s.Get("keys/a.key").status().code(), Status::Code::kNotFound);
  EXPECT_TRUE(s.List("keys").empty());
  ASSERT_TRUE(s.Put("keys/b.key", "bee").ok());
  ASSERT_TRUE(s.Put("keys/a.key", "ay").ok());
  ASSERT_TRUE(s.Put("keys/a.key", "ay again").ok());
  ASSERT_TRUE(s.Put("top", "level").ok());
  EXPECT_EQ(*s.Get("keys/a.key"), "ay again");
  EXPECT_EQ(s.List("keys"), (std::vector<std::string>{"a.key", "b.key"}));
  ASSERT_TRUE(s.Remove("keys/a.key").ok());
  ASSERT_TRUE(s.Remove("keys/a.key").ok()) << "removing what is gone is fine";
  EXPECT_FALSE(s.Has("keys/a.key"));
  EXPECT_EQ(s.List("keys"), (std::vector<std::string>{"b.key"}));
  EXPECT_EQ(*s.Get("top"), "level");
}

TEST_P(BothStoresTest, OverwriteIsVisibleAtOnceAndPutReplacesIt) {
  StateStore& s = *store_;
  ASSERT_TRUE(s.Overwrite("counters/x.rx", "12345678").ok());
  EXPECT_EQ(*s.Get("counters/x.rx"), "12345678");
  ASSERT_TRUE(s.Overwrite("counters/x.rx", "abc").ok());
  EXPECT_EQ(*s.Get("counters/x.rx"), "abc") << "a shorter overwrite leaves no tail";
  ASSERT_TRUE(s.Flush("counters/x.rx").ok());
  ASSERT_TRUE(s.Put("counters/x.rx", "put").ok());
  ASSERT_TRUE(s.Overwrite("counters/x.rx", "over").ok());
  EXPECT_EQ(*s.Get("counters/x.rx"), "over") << "an overwrite after a put writes the new record";
  EXPECT_EQ(s.Overwrite("counters/x.rx", std::string(65, 'x')).code(),
            Status::Code::kInvalidArgument);
}

TEST_P(BothStoresTest, CountersSurviveReopeningAndRefuseReplays) {
  StateStore& s = *store_;
  {
    auto rx = RxCounter::Open(&s, KeyStore::RxName("hub-b", 1));
    ASSERT_TRUE(rx.ok());
    ASSERT_TRUE(rx->Accept(7).ok());
    EXPECT_EQ(rx->Accept(7).code(), Status::Code::kRejected);
    ASSERT_TRUE(rx->Sync().ok());
    auto tx = TxCounter::Open(&s, KeyStore::TxName("hub-b", 1));
    ASSERT_TRUE(tx.ok());
    EXPECT_EQ(*tx->Next(), 1u);
  }
  auto rx = RxCounter::Open(&s, KeyStore::RxName("hub-b", 1));
  ASSERT_TRUE(rx.ok());
  EXPECT_EQ(rx->last(), 7u);
  auto tx = TxCounter::Open(&s, KeyStore::TxName("hub-b", 1));
  ASSERT_TRUE(tx.ok());
  EXPECT_GT(*tx->Next(), 1u) << "a reopened sender never hands out a used counter";
  ASSERT_TRUE(s.Put(KeyStore::TxName("hub-b", 2), "garbage").ok());
  EXPECT_EQ(TxCounter::Open(&s, KeyStore::TxName("hub-b", 2)).status().code(),
            Status::Code::kCorruption);
  ASSERT_TRUE(s.Put(KeyStore::RxName("hub-b", 2), "short").ok());
  EXPECT_EQ(RxCounter::Open(&s, KeyStore::RxName("hub-b", 2)).status().code(),
            Status::Code::kCorruption);
}

INSTANTIATE_TEST_SUITE_P(PosixAndMemory, BothStoresTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Posix" : "Memory"; });

TEST(MemoryStateStoreTest, PowerLossKeepsOnlyWhatWasFlushed) {
  MemoryStateStore s;
  ASSERT_TRUE(s.Overwrite("counters/x.rx", "1").ok());
  ASSERT_TRUE(s.Flush("counters/x.rx").ok());
  ASSERT_TRUE(s.Overwrite("counters/x.rx", "2").ok());
  ASSERT_TRUE(s.Put("keys/a.key", "k").ok());
  s.LosePower();
  EXPECT_EQ(*s.Get("counters/x.rx"), "1");
  EXPECT_EQ(*s.Get("keys/a.key"), "k");
}

TEST(PosixStateStoreTest, RecordsArePrivateAndSymlinksAreNeverFollowed) {
  TempDir dir, outside;
  auto s = NewPosixStateStore(dir.path());
  ASSERT_TRUE(s->Put("keys/a.key", "secret").ok());
  struct stat st;
  ASSERT_EQ(stat(dir.Sub("keys/a.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat(dir.Sub("keys").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  // A symlink planted in state_dir is neither read through nor written through.
  testing::WriteFile(outside.Sub("victim"), "victim");
  ASSERT_EQ(symlink(outside.Sub("victim").c_str(), dir.Sub("keys/b.key").c_str()), 0);
  EXPECT_FALSE(s->Get("keys/b.key").ok());
  EXPECT_FALSE(s->Overwrite("keys/b.key", "x").ok());
  ASSERT_EQ(symlink(outside.Sub("victim").c_str(), dir.Sub("keys/c.key").c_str()), 0);
  ASSERT_TRUE(s->Put("keys/c.key", "replaced").ok());
  EXPECT_EQ(testing::ReadFile(outside.Sub("victim")), "victim");
  EXPECT_EQ(*s->Get("keys/c.key"), "replaced");
  EXPECT_EQ(s->List("keys"), (std::vector<std::string>{"a.key", "c.key"})) << "links are not records";
}

}  // namespace
}  // namespace hubsync
