/*
 * scripts/sanitizer_preload.c: built and preloaded by scripts/sanitize.sh.
 *
 * A small library preloaded after the ASan runtime, for two problems of the sanitizer runtimes with an
 * uninstrumented postgres:
 *  - startup deadlock (llvm/llvm-project#49223; gcc's libasan too): the preloaded runtime initialises
 *    lazily, at the first malloc, and in postgres and psql that malloc comes from a library constructor
 *    (libgpg-error's) inside glibc's bindtextdomain(), which holds glibc's gettext lock.  The
 *    initialisation looks up the optional symbol swift_demangle and clears the failed lookup's error with
 *    dlerror(), which translates the message through gettext, takes the same lock and leaves it broken:
 *    the process then hangs in its own bindtextdomain() call.  With a swift_demangle in the global scope
 *    the lookup succeeds and dlerror() has nothing to translate (the symbolizer calls it only for Swift
 *    names, "_T...", and it declines).
 *  - the UBSan runtime initialises at its first report and reads UBSAN_OPTIONS from /proc/self/environ,
 *    which postgres has overwritten with its process title by then (ps_status.c): the options would be
 *    lost (no stack trace, plain exit(1)).  The library saves UBSAN_OPTIONS at startup and hands it over
 *    through the runtime's __ubsan_default_options() hook.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

char *swift_demangle(const char *name, size_t len, char *out, size_t *outlen, unsigned flags);
const char *__ubsan_default_options(void);

static char ubsan_options[4096];

char *
swift_demangle(const char *name, size_t len, char *out, size_t *outlen, unsigned flags)
{
    (void) name; (void) len; (void) out; (void) outlen; (void) flags;
    return NULL;
}

__attribute__((constructor)) static void
save_ubsan_options(void)
{
    const char *o = getenv("UBSAN_OPTIONS");

    if (o)
        strncpy(ubsan_options, o, sizeof(ubsan_options) - 1);
}

const char *
__ubsan_default_options(void)
{
    return ubsan_options;
}
