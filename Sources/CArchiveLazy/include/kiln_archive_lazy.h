// libarchive, loaded on first use. See archive_lazy.c.
#ifndef KILN_ARCHIVE_LAZY_H
#define KILN_ARCHIVE_LAZY_H
/// Whether libarchive can be loaded; on failure `message` (if given) says why and what to install.
int kiln_archive_available(const char *_Nullable *_Nullable message);
#endif
