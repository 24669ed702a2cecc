// A large state that changes a little between pause points, grows and
// shrinks: what incremental checkpoints (chains of delta images) must
// restore exactly. Shared by the semantics app (as a task, a checkpoint after
// every round) and the tests (plainly, for the expected digest).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace changing_state {

struct State {
  std::vector<uint64_t> words;  // starts at 8 MiB (or `mib`) of noise, grows
  std::vector<uint64_t> temp;   // 4 MiB for a round at times, then freed
};

inline uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

inline State start(uint64_t mib = 8) {
  State s;
  s.words.resize(std::size_t(mib) << 17);
  uint64_t x = 42;
  for (uint64_t& w : s.words) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;  // xorshift64: incompressible
    w = x;
  }
  return s;
}

// One round: a few scattered words change (`words` of them, each on a page
// of its own at most); every 7th round a 4 MiB block is
// allocated (and freed, folded in, the round after); every 16th the words
// grow by 1 MiB (the vector moves: its old pages are freed).
inline void step(State& s, uint64_t round, uint64_t words = 64) {
  for (uint64_t k = 0; k < words; ++k) {
    uint64_t& w = s.words[mix(round * words + k) % s.words.size()];
    w = w * 6364136223846793005ull + round + k;
  }
  if (round % 7 == 3) s.temp.assign(std::size_t{1} << 19, mix(round));
  if (round % 7 == 4) {
    for (uint64_t t : s.temp) s.words[round] += t;
    std::vector<uint64_t>().swap(s.temp);
  }
  if (round % 16 == 15) s.words.resize(s.words.size() + (std::size_t{1} << 17), round);
}

inline uint64_t digest(const State& s) {
  uint64_t h = s.words.size();
  for (uint64_t w : s.words) h = mix(h ^ w);
  return h;
}

inline uint64_t run_plain(uint64_t rounds, uint64_t mib = 8, uint64_t words = 64) {
  State s = start(mib);
  for (uint64_t r = 0; r < rounds; ++r) step(s, r, words);
  return digest(s);
}

}  // namespace changing_state
