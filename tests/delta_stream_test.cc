// A delta read once for several backups (SharedDelta): the chunks every
// reader gets, what is read from disk, and a reader left behind.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "apply_util.h"
#include "fault_fs.h"
#include "hubsync/delta_writer.h"

namespace hubsync {
namespace testing {
namespace {

constexpr size_t kMaxPlain = 16384;

class SharedDeltaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFile(src_.Sub("db/hub.sqlite"), RandomBytesString(1 << 20, 5));  // ~64 chunks
    for (int i = 0; i < 20; ++i) {
      WriteFile(src_.Sub("devices/d" + std::to_string(i) + ".json"),
                "{\"id\":" + std::to_string(i) + ",\"name\":\"lamp\"}");
    }
    fs_ = std::make_unique<FaultFs>(NewPosixFileSystem(src_.path()));
    PathFilter none;
    target_ = std::make_shared<const Manifest>(ScanTree(fs_.get(), &none));
    base_ = std::make_shared<const Manifest>();
    // What one backup alone is sent.
    auto w = Writer();
    while (!w->done()) {
      bool last = false;
      auto plain = w->Next(&last);
      ASSERT_TRUE(plain.ok());
      expected_.push_back(Pack(*plain, true, last));
    }
    ASSERT_GT(expected_.size(), 2 * SharedDelta::kMaxHeld);
  }
  std::unique_ptr<DeltaWriter> Writer() {
    return std::make_unique<DeltaWriter>(fs_.get(), target_, base_, Diff(*target_, *base_),
                                         kMaxPlain);
  }
  // Takes reader r's next chunk and checks it is the one a lone backup gets.
  void Take(DeltaReader& r, size_t* at) {
    auto c = r.Next();
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    ASSERT_LT(*at, expected_.size());
    EXPECT_EQ((*c)->bytes, expected_[*at].bytes) << "chunk " << *at;
    EXPECT_EQ((*c)->compressed, expected_[*at].compressed);
    EXPECT_EQ((*c)->last, expected_[*at].last);
    ++*at;
  }

  TempDir src_;
  std::unique_ptr<FaultFs> fs_;
  std::shared_ptr<const Manifest> target_, base_;
  std::vector<PackedChunk> expected_;
};

TEST_F(SharedDeltaTest, BackupsAtTheSameTreeGetTheSameChunksFromOneRead) {
  int reads_before = fs_->reads;
  {
    auto lone = std::make_shared<SharedDelta>(Writer(), true)->Join();
    size_t at = 0;
    while (at < expected_.size()) Take(*lone, &at);
  }
  int one_backup = fs_->reads - reads_before;
  reads_before = fs_->reads;
  auto first = std::make_shared<SharedDelta>(Writer(), true)->Join();
  std::vector<std::unique_ptr<DeltaReader>> readers;
  readers.push_back(std::move(first));
  size_t ahead = 0;
  Take(*readers[0], &ahead);  // the others join a moment later
  for (int i = 0; i < 2; ++i) {
    readers.push_back(readers[0]->Join());
    ASSERT_NE(readers.back(), nullptr);
    EXPECT_TRUE(readers.back()->shared());
  }
  // Each in bursts of its own, never more than a window (8) ahead of the
  // slowest, as the backups' acks allow.
  std::vector<size_t> at = {ahead, 0, 0};
  for (size_t round = 0; *std::min_element(at.begin(), at.end()) < expected_.size(); ++round) {
    size_t limit = std::min(*std::min_element(at.begin(), at.end()) + 8, expected_.size());
    for (size_t r = 0; r < readers.size(); ++r) {
      for (size_t k = 0; k <= (round + r) % 3 && at[r] < limit; ++k) Take(*readers[r], &at[r]);
    }
  }
  EXPECT_EQ(fs_->reads - reads_before, one_backup) << "three backups, one read of the files";
}

TEST_F(SharedDeltaTest, AReaderFarBehindIsLetGoAndGoesOnAloneWithTheSameChunks) {
  auto fast = std::make_shared<SharedDelta>(Writer(), true)->Join();
  auto slow = fast->Join();
  size_t fast_at = 0, slow_at = 0;
  Take(*slow, &slow_at);
  // The fast one is never held up: it reads on past the held limit.
  while (fast_at < expected_.size()) Take(*fast, &fast_at);
  auto c = slow->Next();
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Status::Code::kUnavailable);
  auto alone = DeltaReader::Alone(Writer(), true, slow_at);
  ASSERT_TRUE(alone.ok()) << alone.status().ToString();
  EXPECT_FALSE((*alone)->shared());
  while (slow_at < expected_.size()) Take(**alone, &slow_at);
}

TEST_F(SharedDeltaTest, NoOneJoinsOnceTheFirstChunkIsGone) {
  auto r = std::make_shared<SharedDelta>(Writer(), true)->Join();
  size_t at = 0;
  while (at <= SharedDelta::kMaxHeld) Take(*r, &at);  // past the held limit
  EXPECT_EQ(r->Join(), nullptr);
}

TEST_F(SharedDeltaTest, AFileThatVanishesFailsEveryReaderAndNoneReadsOn) {
  auto first = std::make_shared<SharedDelta>(Writer(), true)->Join();
  auto second = first->Join();
  size_t at = 0;
  Take(*first, &at);
  // A file the writer has not opened yet vanishes: the writer stops inside a
  // chunk, in a state it must never be asked to go on from.
  ASSERT_EQ(unlink(src_.Sub("devices/d7.json").c_str()), 0);
  // Both in step (as backups within a window of each other): the first to
  // reach the gap fails, and so does the other, never reading on past it.
  Status failed[2];
  DeltaReader* readers[2] = {first.get(), second.get()};
  for (size_t round = 0; round < expected_.size() && (failed[0].ok() || failed[1].ok()); ++round) {
    for (int r = 0; r < 2; ++r) {
      if (!failed[r].ok()) continue;
      auto c = readers[r]->Next();
      if (!c.ok()) failed[r] = c.status();
    }
  }
  ASSERT_FALSE(failed[0].ok()) << "a vanished file was sent";
  EXPECT_EQ(failed[0].code(), Status::Code::kAborted) << failed[0].ToString();
  EXPECT_EQ(failed[1].code(), failed[0].code()) << failed[1].ToString();
}

}  // namespace
}  // namespace testing
}  // namespace hubsync
