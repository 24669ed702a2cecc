#include "runtime/task_host.h"

#include <optional>

namespace kappa::detail {
namespace {
using RootHandle = Task<std::string>::handle_type;
}

Arena* start_task(Trampoline trampoline, uint64_t fn, const std::vector<std::string>& args) {
  int slot = Arena::free_slot();
  if (slot < 0) throw Error("no free task arena slot in this process");
  Arena* arena = Arena::create(unsigned(slot));
  try {
    ArenaScope scope(arena);
    // The arguments are copied into the arena: the task's frame keeps them.
    Task<std::string> task = trampoline(uintptr_t(fn), std::vector<std::string>(args));
    arena->task().root_frame = task.release().address();
  } catch (...) {
    Arena::destroy(arena);
    throw;
  }
  arena->task().suspended_frame = arena->task().root_frame;
  return arena;
}

bool resume_task(Arena* arena) {
  TaskState& t = arena->task();
  auto next = std::coroutine_handle<>::from_address(t.suspended_frame);
  t.suspended_frame = nullptr;
  t.pending = nullptr;
  {
    ArenaScope scope(arena);
    next.resume();
  }
  if (RootHandle::from_address(t.root_frame).done()) return true;
  if (!t.pending)
    throw Error(
        "the task suspended outside a kappa pause point (it awaited something that is "
        "not a kappa awaitable)");
  return false;
}

PendingCall& pending_call(Arena* arena) {
  return *static_cast<PendingCall*>(arena->task().pending);
}

void deliver(Arena* arena, std::string_view reply, const std::string& error) {
  ArenaScope scope(arena);
  PendingCall& call = pending_call(arena);
  call.reply = reply;
  call.error.assign(error);
}

TaskOutcome finish_task(Arena* arena) {
  TaskOutcome out;
  auto root = RootHandle::from_address(arena->task().root_frame);
  // The value lives in the arena; copy it out with no arena current.
  std::optional<std::string> value;
  try {
    ArenaScope scope(arena);
    value.emplace(root.promise().result());
  } catch (const std::exception& e) {  // handlers run after the scope has ended
    out.failed = true;
    out.error = e.what();
  } catch (...) {
    out.failed = true;
    out.error = "an exception that is not a std::exception";
  }
  if (value) out.value.assign(value->data(), value->size());
  {
    ArenaScope scope(arena);
    value.reset();
    root.destroy();
  }
  Arena::destroy(arena);
  return out;
}

void discard_task(Arena* arena) {
  // The frames are not destroyed: their destructors would run task code
  // (and free into an arena that is about to vanish anyway).
  Arena::destroy(arena);
}

}  // namespace kappa::detail
