// A pipeline of tasks joined by bounded queues: the teaching example.
//
//   pipeline run --event '{"items": 1000}'
//   -> {"items":1000,"produced":1000,"transformed":1000,"consumed":1000,
//       "sum":333833500,"checksum":...}
//
//   producer --(queue of 4)--> square --(rendezvous: queue of 0)--> consumer
//
// The producer enqueues 1, 2, ..., items, then an end-of-stream marker (an
// empty std::optional). The stage squares each number and passes the marker
// on. The consumer adds the squares up until the marker. An enqueue on a full
// queue waits, as a dequeue on an empty one does; on the rendezvous queue an
// enqueue waits until a dequeue takes the item. A task waiting too long is
// parked (checkpointed, its worker freed) and resumed where it waited, so the
// three tasks run on any number of workers. Queue operations are exactly
// once: a worker killed and its task restarted from its last checkpoint does
// not enqueue or dequeue an item twice.
//
// Event fields (all optional): "items" (default 1000), "capacity" (the first
// queue's size, default 4).
// Result fields: "items" as asked; "produced", "transformed", "consumed" (how
// many numbers each task handled: all equal to items); "sum" (of the squares
// the consumer received, modulo 2^64); "checksum" (an order-sensitive FNV-1a
// style hash of them, in the order received: it shows every item arrived
// once and in order).
#include <kappa/kappa.h>

#include <cstdint>
#include <optional>

namespace {

using kappa::Queue;
using kappa::Task;

// An item of the stream; std::nullopt marks its end.
using Item = std::optional<uint64_t>;

struct Totals {
  uint64_t consumed = 0, sum = 0, checksum = 0xcbf29ce484222325ull;
  template <class A>
  void serialize(A& a) {
    a(consumed, sum, checksum);
  }
};

Task<uint64_t> producer(Queue<Item> out, uint64_t items) {
  for (uint64_t i = 1; i <= items; ++i) co_await out.enqueue(i);  // waits while full
  co_await out.enqueue(std::nullopt);                             // end of stream
  co_return items;
}

Task<uint64_t> square(Queue<Item> in, Queue<Item> out) {
  uint64_t n = 0;
  for (;;) {
    Item x = co_await in.dequeue();  // waits while empty
    if (!x) break;
    co_await out.enqueue(*x * *x);  // a rendezvous: waits for the consumer
    ++n;
  }
  co_await out.enqueue(std::nullopt);  // pass the end on
  co_return n;
}

Task<Totals> consumer(Queue<Item> in) {
  Totals t;
  for (;;) {
    Item y = co_await in.dequeue();
    if (!y) break;
    ++t.consumed;
    t.sum += *y;
    t.checksum = (t.checksum ^ *y) * 0x100000001b3ull;
  }
  co_return t;
}

Task<nlohmann::json> handler(nlohmann::json event) {
  uint64_t items = event.value("items", uint64_t{1000});
  uint64_t capacity = event.value("capacity", uint64_t{4});
  Queue<Item> numbers = co_await kappa::make_queue<Item>(capacity);
  Queue<Item> squares = co_await kappa::make_queue<Item>(0);  // rendezvous
  auto produced = co_await kappa::spawn(producer, numbers, items);
  auto transformed = co_await kappa::spawn(square, numbers, squares);
  auto totals = co_await kappa::spawn(consumer, squares);
  Totals t = co_await totals;
  uint64_t p = co_await produced, s = co_await transformed;
  co_return nlohmann::json{{"items", items},         {"produced", p}, {"transformed", s},
                           {"consumed", t.consumed}, {"sum", t.sum},  {"checksum", t.checksum}};
}

}  // namespace

KAPPA_MAIN(handler)
