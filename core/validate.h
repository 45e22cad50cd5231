/* Checksum and plausibility validators for identifiers that regexes alone
 * match too loosely.  Each takes the matched text as found (separators such
 * as spaces and dashes allowed where the identifier's written forms use
 * them) and returns 1 when it is a valid identifier, 0 otherwise.  Pure
 * functions; no allocation. */
#ifndef LG_VALIDATE_H
#define LG_VALIDATE_H

#include <stddef.h>

/* Payment card: 12-19 digits (spaces/dashes ignored), Luhn checksum. */
int lg_valid_luhn(const char *s, size_t n);

/* Chinese resident identity number (GB 11643-1999): 18 characters, 17
 * digits and a check character (0-9 or X/x), ISO 7064 MOD 11-2 checksum,
 * birth date YYYYMMDD that exists and is between 1900 and 2100, region
 * code not starting with 0 or 9. */
int lg_valid_cn_id(const char *s, size_t n);

/* IBAN (ISO 13616): country code, two check digits, BBAN; spaces allowed
 * between groups; known country length; mod-97 == 1. */
int lg_valid_iban(const char *s, size_t n);

/* Chinese unified social credit code (GB 32100-2015): 18 characters over
 * 0-9 and A-Z without I, O, S, V, Z; weighted mod-31 check character. */
int lg_valid_cn_uscc(const char *s, size_t n);

/* Dispatch by enum lg_validator (policy.h); LG_VAL_NONE accepts. */
int lg_validate(int validator, const char *s, size_t n);

#endif
