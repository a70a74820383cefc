// libarchive, loaded with dlopen on first use instead of at start-up.
//
// Why: libarchive pulls in ten more shared libraries (nettle, acl, lzma, zstd, lz4, bz2, z,
// xml2, ICU, libstdc++) whose loading and relocation cost every kiln command about 1.5 ms, the
// sandbox commands included, which never archive anything (BENCHMARKS.md). Each function below
// has libarchive's own name and prototype (the compiler checks them against <archive.h>), so
// KilnStore calls libarchive as usual; the first call of each resolves the real function once.
// When KilnStore starts using another libarchive function, add its line here: the link fails
// with an undefined symbol until then.
#define _GNU_SOURCE
#include "kiln_archive_lazy.h"

#include <archive.h>
#include <archive_entry.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static void *library;
static const char *load_error;
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

static void load(void) {
    library = dlopen("libarchive.so.13", RTLD_NOW | RTLD_LOCAL);
    if (!library) load_error = dlerror();
}

int kiln_archive_available(const char **message) {
    pthread_once(&load_once, load);
    if (!library && message) *message = load_error;
    return library != NULL;
}

static void *symbol(const char *name) {
    const char *message = NULL;
    if (!kiln_archive_available(&message)) {
        fprintf(stderr, "kiln: cannot load libarchive (%s): install it with `sudo apt-get install libarchive13`\n", message ? message : "unknown error");
        exit(69);  // EX_UNAVAILABLE
    }
    void *fn = dlsym(library, name);
    if (!fn) {
        fprintf(stderr, "kiln: libarchive has no %s: install libarchive 3.6 or newer\n", name);
        exit(69);
    }
    return fn;
}

// The real function `name`, resolved once.
#define KILN_LAZY(name) ({ \
    static __typeof__(&name) resolved; \
    __typeof__(&name) fn = __atomic_load_n(&resolved, __ATOMIC_ACQUIRE); \
    if (!fn) { fn = (__typeof__(&name))symbol(#name); __atomic_store_n(&resolved, fn, __ATOMIC_RELEASE); } \
    fn; })

struct archive_entry * archive_entry_clear(struct archive_entry *a0) { return KILN_LAZY(archive_entry_clear)(a0); }
void archive_entry_copy_pathname(struct archive_entry *a0, const char *a1) { KILN_LAZY(archive_entry_copy_pathname)(a0, a1); }
void archive_entry_copy_symlink(struct archive_entry *a0, const char *a1) { KILN_LAZY(archive_entry_copy_symlink)(a0, a1); }
__LA_MODE_T archive_entry_filetype(struct archive_entry *a0) { return KILN_LAZY(archive_entry_filetype)(a0); }
void archive_entry_free(struct archive_entry *a0) { KILN_LAZY(archive_entry_free)(a0); }
const char * archive_entry_hardlink(struct archive_entry *a0) { return KILN_LAZY(archive_entry_hardlink)(a0); }
time_t archive_entry_mtime(struct archive_entry *a0) { return KILN_LAZY(archive_entry_mtime)(a0); }
int archive_entry_mtime_is_set(struct archive_entry *a0) { return KILN_LAZY(archive_entry_mtime_is_set)(a0); }
long archive_entry_mtime_nsec(struct archive_entry *a0) { return KILN_LAZY(archive_entry_mtime_nsec)(a0); }
struct archive_entry * archive_entry_new(void) { return KILN_LAZY(archive_entry_new)(); }
const char * archive_entry_pathname(struct archive_entry *a0) { return KILN_LAZY(archive_entry_pathname)(a0); }
const char * archive_entry_pathname_utf8(struct archive_entry *a0) { return KILN_LAZY(archive_entry_pathname_utf8)(a0); }
__LA_MODE_T archive_entry_perm(struct archive_entry *a0) { return KILN_LAZY(archive_entry_perm)(a0); }
void archive_entry_set_filetype(struct archive_entry *a0, unsigned int a1) { KILN_LAZY(archive_entry_set_filetype)(a0, a1); }
void archive_entry_set_gid(struct archive_entry *a0, la_int64_t a1) { KILN_LAZY(archive_entry_set_gid)(a0, a1); }
void archive_entry_set_mtime(struct archive_entry *a0, time_t a1, long a2) { KILN_LAZY(archive_entry_set_mtime)(a0, a1, a2); }
void archive_entry_set_perm(struct archive_entry *a0, __LA_MODE_T a1) { KILN_LAZY(archive_entry_set_perm)(a0, a1); }
void archive_entry_set_size(struct archive_entry *a0, la_int64_t a1) { KILN_LAZY(archive_entry_set_size)(a0, a1); }
void archive_entry_set_uid(struct archive_entry *a0, la_int64_t a1) { KILN_LAZY(archive_entry_set_uid)(a0, a1); }
la_int64_t archive_entry_size(struct archive_entry *a0) { return KILN_LAZY(archive_entry_size)(a0); }
const char * archive_entry_symlink(struct archive_entry *a0) { return KILN_LAZY(archive_entry_symlink)(a0); }
const char * archive_entry_symlink_utf8(struct archive_entry *a0) { return KILN_LAZY(archive_entry_symlink_utf8)(a0); }
const char * archive_error_string(struct archive *a0) { return KILN_LAZY(archive_error_string)(a0); }
int archive_read_data_block(struct archive *a0, const void **a1, size_t *a2, la_int64_t *a3) { return KILN_LAZY(archive_read_data_block)(a0, a1, a2, a3); }
int archive_read_free(struct archive *a0) { return KILN_LAZY(archive_read_free)(a0); }
struct archive * archive_read_new(void) { return KILN_LAZY(archive_read_new)(); }
int archive_read_next_header(struct archive *a0, struct archive_entry **a1) { return KILN_LAZY(archive_read_next_header)(a0, a1); }
int archive_read_open(struct archive *a0, void *a1, archive_open_callback *a2, archive_read_callback *a3, archive_close_callback *a4) { return KILN_LAZY(archive_read_open)(a0, a1, a2, a3, a4); }
int archive_read_support_filter_bzip2(struct archive *a0) { return KILN_LAZY(archive_read_support_filter_bzip2)(a0); }
int archive_read_support_filter_gzip(struct archive *a0) { return KILN_LAZY(archive_read_support_filter_gzip)(a0); }
int archive_read_support_filter_xz(struct archive *a0) { return KILN_LAZY(archive_read_support_filter_xz)(a0); }
int archive_read_support_filter_zstd(struct archive *a0) { return KILN_LAZY(archive_read_support_filter_zstd)(a0); }
int archive_read_support_format_tar(struct archive *a0) { return KILN_LAZY(archive_read_support_format_tar)(a0); }
int archive_write_add_filter_none(struct archive *a0) { return KILN_LAZY(archive_write_add_filter_none)(a0); }
int archive_write_close(struct archive *a0) { return KILN_LAZY(archive_write_close)(a0); }
la_ssize_t archive_write_data(struct archive *a0, const void *a1, size_t a2) { return KILN_LAZY(archive_write_data)(a0, a1, a2); }
int archive_write_finish_entry(struct archive *a0) { return KILN_LAZY(archive_write_finish_entry)(a0); }
int archive_write_free(struct archive *a0) { return KILN_LAZY(archive_write_free)(a0); }
int archive_write_header(struct archive *a0, struct archive_entry *a1) { return KILN_LAZY(archive_write_header)(a0, a1); }
struct archive * archive_write_new(void) { return KILN_LAZY(archive_write_new)(); }
int archive_write_open2(struct archive *a0, void *a1, archive_open_callback *a2, archive_write_callback *a3, archive_close_callback *a4, archive_free_callback *a5) { return KILN_LAZY(archive_write_open2)(a0, a1, a2, a3, a4, a5); }
int archive_write_set_bytes_in_last_block(struct archive *a0, int a1) { return KILN_LAZY(archive_write_set_bytes_in_last_block)(a0, a1); }
int archive_write_set_bytes_per_block(struct archive *a0, int a1) { return KILN_LAZY(archive_write_set_bytes_per_block)(a0, a1); }
int archive_write_set_format_pax_restricted(struct archive *a0) { return KILN_LAZY(archive_write_set_format_pax_restricted)(a0); }
int archive_read_open_fd(struct archive *a0, int a1, size_t a2) { return KILN_LAZY(archive_read_open_fd)(a0, a1, a2); }
int archive_write_open_fd(struct archive *a0, int a1) { return KILN_LAZY(archive_write_open_fd)(a0, a1); }
