// open_journal: the coordinator journals by URL scheme (--state URL).
// A new journal is a new file defining its open function, and one line here.
#pragma once

#include <memory>
#include <string>

#include "coordinator/journal.h"

namespace kappa::detail {

/// Opens the journal at `url`: sqlite://PATH or
/// redis://HOST:PORT[/DB][?name=NAME]. Throws kappa::Error for an
/// unknown scheme (the message lists the known ones), or a journal that
/// cannot be opened: corrupt, of a newer format, or in use by a live
/// coordinator.
std::unique_ptr<Journal> open_journal(const std::string& url);

/// Opens the journal at `url` to read its job (identity(), load()) while
/// the job's coordinator may be running: Redis is read without its lock,
/// and nothing can be written. A SQLite journal is held exclusively by its
/// coordinator: while one runs, this throws kappa::Error as open_journal
/// does.
std::unique_ptr<Journal> open_journal_reader(const std::string& url);

}  // namespace kappa::detail
