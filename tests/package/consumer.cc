// The smallest Kappa application: a loop with pause points.
#include <kappa/kappa.h>

#include <vector>

kappa::Task<nlohmann::json> handler(nlohmann::json event) {
  std::vector<int> squares;
  for (int i = 0; i < event.value("n", 10); ++i) {
    squares.push_back(i * i);
    co_await kappa::checkpoint();
  }
  co_return nlohmann::json(squares);
}

KAPPA_MAIN(handler)
