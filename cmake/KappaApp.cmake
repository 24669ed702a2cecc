# kappa_add_app(NAME SOURCES...)
#
# Builds a Kappa application (a binary whose main() is KAPPA_MAIN) with what
# transparent checkpoints need (DESIGN.md section 2):
#   - the arena allocator linked into the executable itself, so that its
#     malloc/operator new replace glibc's for every library, and exported so
#     shared libraries bind to them;
#   - a GNU build id, which checkpoints record to refuse other binaries.
# The deterministic address layout comes at run time: KAPPA_MAIN re-executes
# the process once with ASLR disabled (personality ADDR_NO_RANDOMIZE), which
# works with shared libraries (libstdc++, gRPC) and needs no special linking.
#
# kappa_link_runtime(TARGET) does the same for an existing executable target
# (tests and benchmarks that drive the runtime without KAPPA_MAIN).
#
# The symbol list lies beside this file. The functions find it through
# CMAKE_CURRENT_FUNCTION_LIST_DIR, which names this file's folder wherever
# they are called from: a variable set here would live only in the scope that
# included this file (Kappa's own folder after add_subdirectory), and be empty
# in the parent project that calls kappa_add_app().
function(kappa_link_runtime target)
  target_link_libraries(${target} PRIVATE kappa::kappa kappa::malloc)
  target_link_options(${target} PRIVATE "LINKER:--build-id=sha1"
                      "LINKER:--dynamic-list=${CMAKE_CURRENT_FUNCTION_LIST_DIR}/kappa_exports.list")
endfunction()

function(kappa_add_app name)
  if(NOT ARGN)
    message(FATAL_ERROR "kappa_add_app(${name}) needs at least one source file")
  endif()
  add_executable(${name} ${ARGN})
  kappa_link_runtime(${name})
endfunction()
