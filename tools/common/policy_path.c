/* Policy lookup shared by llmguard-check, llmguard-run and the shim. */
#include "policy_path.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"

static int put(char *buf, size_t n, const char *a, const char *b)
{
    int k = snprintf(buf, n, "%s%s", a, b ? b : "");
    return k < 0 || (size_t)k >= n ? -1 : 0;
}

int lg_policy_locate(const char *explicit_path, char *buf, size_t n)
{
    if (explicit_path && *explicit_path)
        return put(buf, n, explicit_path, NULL);
    const char *env = getenv("LLMGUARD_POLICY");
    if (env && *env)
        return put(buf, n, env, NULL);
    const char *xdg = getenv("XDG_CONFIG_HOME");
    const char *home = getenv("HOME");
    char p[4096];
    int ok = -1;
    if (xdg && *xdg)
        ok = put(p, sizeof p, xdg, "/llmguard/policy.json");
    else if (home && *home)
        ok = put(p, sizeof p, home, "/.config/llmguard/policy.json");
    if (ok == 0 && access(p, F_OK) == 0)
        return put(buf, n, p, NULL);
    if (access("/etc/llmguard/policy.json", F_OK) == 0)
        return put(buf, n, "/etc/llmguard/policy.json", NULL);
    return put(buf, n, "", NULL);
}

int lg_policy_open(const char *explicit_path, lg_policy **out, char *where, size_t wn,
                   char *msg, size_t mn)
{
    char path[4096];
    lg_diag d;
    memset(&d, 0, sizeof d);
    *out = NULL;
    if (lg_policy_locate(explicit_path, path, sizeof path) != 0) {
        snprintf(msg, mn, "policy path too long");
        return LG_E_INVAL;
    }
    snprintf(where, wn, "%s", path);
    int rc = path[0] ? lg_policy_load_file(path, out, &d) : lg_policy_builtin(out, &d);
    if (rc) {
        lg_diag_format(&d, msg, mn);
        return rc;
    }
    const char *mode = getenv("LLMGUARD_MODE");
    if (mode && *mode) {
        if (strcmp(mode, "enforce") == 0) {
            (*out)->mode = LG_MODE_ENFORCE;
        } else if (strcmp(mode, "monitor") == 0) {
            (*out)->mode = LG_MODE_MONITOR;
        } else {
            snprintf(msg, mn, "LLMGUARD_MODE: expected enforce or monitor, got '%s'", mode);
            lg_policy_free(*out);
            *out = NULL;
            return LG_E_POLICY;
        }
    }
    return LG_OK;
}
