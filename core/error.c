/* lg_strerror() and lg_errname(), generated from LG_ERRNO_MAP. */
#include "error.h"

const char *lg_strerror(int err)
{
    switch (err) {
    case LG_OK: return "success";
#define LG__ERR_STR(name, val, msg) case val: return msg;
    LG_ERRNO_MAP(LG__ERR_STR)
#undef LG__ERR_STR
    }
    return "unknown error";
}

const char *lg_errname(int err)
{
    switch (err) {
    case LG_OK: return "OK";
#define LG__ERR_NAME(name, val, msg) case val: return #name;
    LG_ERRNO_MAP(LG__ERR_NAME)
#undef LG__ERR_NAME
    }
    return "UNKNOWN";
}
