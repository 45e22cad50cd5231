/* The system-prompt scope check: restrictions a request's system prompt
 * states, and whether the request's other texts ask for what they forbid.
 *
 * Some attacks are attacks only relative to their system prompt.  "What do
 * you think of the election?" is an ordinary question, unless the system
 * prompt of the same request says "never discuss politics"; "where does Jane
 * Smith live?" is one unless it says "do not reveal private information
 * about the user (Jane Smith, ...)".  The engine sees both texts in one
 * request, so it can compare them.  This module does the comparing, in two
 * steps:
 *
 * 1. lg_scope_extract reads system text (English and Chinese) for:
 *    - prohibitions: a negation (never, do not, must not, under no
 *      circumstances, avoid, refuse, "you are not programmed to", 不要,
 *      禁止, 不得, 请勿, 切勿, 避免, ...) followed by a verb of talking or
 *      giving (discuss, talk about, share, reveal, provide, give instructions
 *      on, help with, 讨论, 谈论, 提供, 透露, ...) and its object; and
 *      passives ("providing recipes is not allowed", "X is off-limits").
 *      The object becomes topics: content words, lightly stemmed
 *      (politics/political, recipe/recipes, calculate/calculations), split
 *      at "or", "and", commas, "such as", "like", "including"; generic words
 *      (topics, information, advice, in-depth, ...) are dropped.  A topic of
 *      several words matches only when all of them occur close together.
 *      A small hand-written lexicon (scope.c) adds related terms for common
 *      restricted subjects (AI: machine learning, neural network; politics:
 *      election, parliament; ...) and acronyms;
 *    - protected secrets: a quoted value named password, passcode, PIN,
 *      secret code or key ("the password is 'Flower'"), when the system text
 *      also forbids revealing or sharing;
 *    - protected people: names and personal attributes (born, lives,
 *      e-mail, phone) in a system text that forbids revealing personal or
 *      private information about the user, customer, patient, ...
 *    Allow-lists ("only discuss X", "do not answer questions unrelated to
 *    X") are deliberately not prohibitions of everything else: reading them
 *    so would flag every off-topic question, which is the model's job to
 *    decline, not an attack.
 * 2. lg_scope_match looks for the first place in a text that asks about a
 *    restricted topic, names a protected secret (the value itself, or its
 *    name not preceded by "my"), or names a protected person next to one of
 *    the protected attributes.
 *
 * Limits, by design: a restriction the parser does not read (unusual
 * phrasing), a user text in another language than the restriction, and a
 * request that talks around the topic without its words all get through.
 * This is word matching, not understanding.
 *
 * Work and memory are bounded on hostile input: at most LG_SCOPE_SYS_MAX
 * bytes of system text are read (sentences over LG_SCOPE_SENT_TOKENS tokens
 * are read in pieces); at most LG_SCOPE_MAX_PHRASES topic phrases,
 * LG_SCOPE_MAX_PEOPLE people and LG_SCOPE_MAX_VALUES values are kept (more
 * are counted in `dropped`); matching is linear in the text and stops at
 * the first hit: one pass for the Latin words (a word whose first bytes no
 * restricted word has is skipped at once, the others are stemmed and
 * looked up: one hash probe) and one for all Han terms (indexed by their
 * first character; a bounded number of occurrences tried per term).
 *
 * Cost: the check runs on every request with a system prompt, so it is
 * built to be cheap (README, Performance): the word lists are one table
 * (built on the first extract, kept by lg_scope_reset), Han passes are
 * skipped for text without CJK bytes, and lg_conn reads a connection's
 * system prompt again only when it changed.  Each fast path has a plain
 * twin (lg_scope_set_reference) that tests and the fuzz target compare it
 * with.
 *
 * Ownership: lg_scope is a caller-owned struct (about 100 KiB: allocate it,
 * or embed it in something allocated, rather than put it on a small stack),
 * zero-filled before its first use and lg_scope_reset between requests
 * (reusing one is cheaper than zero-filling a new one: the word lists'
 * table is kept).  It holds copies, no pointers into the texts (its own
 * tables point only into scope.c's constant lists), and nothing to free.
 * lg_scope_match writes scratch state into it, so one lg_scope serves one
 * thread at a time. */
#ifndef LG_SCOPE_H
#define LG_SCOPE_H

#include <stddef.h>

#include "policy.h"
#include "scan.h"

#define LG_SCOPE_SYS_MAX (64u << 10)  /* bytes of system text read per request */
#define LG_SCOPE_SENT_TOKENS 96       /* tokens of one sentence looked at together */
#define LG_SCOPE_MAX_PHRASES 160      /* topic phrases kept, lexicon terms included */
#define LG_SCOPE_MAX_WORDS 4          /* words in one phrase */
#define LG_SCOPE_WORD 24              /* bytes of one stemmed word or Han term */
#define LG_SCOPE_MAX_PEOPLE 4         /* protected people */
#define LG_SCOPE_PERSON_TERMS 24      /* names/referents plus attributes per person */
#define LG_SCOPE_MAX_VALUES 8         /* protected secret values */
#define LG_SCOPE_VALUE 64             /* bytes of one secret value */
#define LG_SCOPE_MAX_RESTR 32         /* restrictions described in `what` */
#define LG_SCOPE_UNIQ 1024            /* distinct Latin words (hash table size; half used at most) */

/* The built-in rule the check reports under (policy.c adds it with the
 * injection pack unless "scope": false). */
#define LG_SCOPE_RULE_ID "injection.system_scope"

typedef struct lg_scope_word {
    unsigned char len;          /* bytes used in s */
    unsigned char han;          /* a Han (CJK) term, matched as a substring */
    char s[LG_SCOPE_WORD];      /* stemmed lower-case word, or UTF-8 Han term; not NUL-terminated */
} lg_scope_word;

typedef struct lg_scope_phrase {
    lg_scope_word w[LG_SCOPE_MAX_WORDS]; /* all must occur within a few words of each other */
    unsigned short id[LG_SCOPE_MAX_WORDS]; /* Latin words: index into the word table */
    unsigned char nw;           /* words used */
    unsigned char secret;       /* names a secret: not after "my"; Han needs an asking word near */
    unsigned char restr;        /* index into `what` of the restriction it serves */
} lg_scope_phrase;

typedef struct lg_scope_person {
    lg_scope_word ref[LG_SCOPE_PERSON_TERMS];  /* name words and referents ("user", "patient") */
    lg_scope_word attr[LG_SCOPE_PERSON_TERMS]; /* protected attributes ("born", "live", "email") */
    unsigned short ref_id[LG_SCOPE_PERSON_TERMS], attr_id[LG_SCOPE_PERSON_TERMS]; /* word table */
    unsigned char nref, nattr;  /* entries used */
    unsigned char restr;        /* index into `what` */
} lg_scope_person;

typedef struct lg_scope_value {
    unsigned char len;          /* bytes used */
    unsigned char restr;        /* index into `what` */
    char s[LG_SCOPE_VALUE];     /* the secret as written in the system text */
} lg_scope_value;

typedef struct lg_scope_uw {    /* one distinct Latin word of every phrase and person */
    char s[LG_SCOPE_WORD];      /* stem */
    unsigned char len;          /* 0: free slot */
    unsigned char people;       /* bit 2p: a name or referent of person p, bit 2p+1: an attribute */
    unsigned short ph0, nphw;   /* the phrases with this word: phw[ph0 .. ph0 + nphw), in order */
    unsigned last;              /* scratch for lg_scope_match: 1 + word index where last seen, 0 never */
    unsigned start;             /* scratch: byte offset where last seen (texts under 4 GiB) */
} lg_scope_uw;

/* One word of the extraction's word lists (scope.c), and the lists it is
 * in: a bit per list (the lists' order is scope.c's). */
#define LG_SCOPE_LEXW 15          /* bytes of the longest list word or lexicon key stem */
#define LG_SCOPE_LEX_WORDS 768    /* distinct words over all lists */
#define LG_SCOPE_LEX_SLOTS 2048   /* hash slots for them (a power of two) */
typedef struct lg_scope_lexword {
    unsigned long long m[2];    /* membership bits */
    unsigned char len;          /* bytes used in s */
    char s[LG_SCOPE_LEXW];      /* the word, lower case; not NUL-terminated */
} lg_scope_lexword;

#define LG_SCOPE_PHASH 512        /* hash slots for phrases (a power of two over 2 * MAX_PHRASES) */
#define LG_SCOPE_PRE_BITS 4096    /* the matcher's prefilter bitmap */
#define LG_SCOPE_HAN_HEADS 64     /* hash buckets of Han phrases by their first character */

typedef struct lg_scope {
    /* ==== The restrictions: lg_scope_reset empties them (sets the counts
     * to 0: entries past a count are stale, never read) ==== */
    size_t nph, npeople, nval, nrestr; /* entries used in ph, people, val, what */
    size_t dropped;             /* phrases, people, values or restrictions over the limits */
    int ban_reveal;             /* internal: the system text forbids revealing or sharing */
    size_t npending;            /* internal: entries in pending and pending_noun */
    int person_ban;             /* internal: personal information is protected */
    size_t nnames;              /* internal: entries in names */
    size_t nuw;                 /* words in uw (their slots are uw_used[0 .. nuw)) */
    size_t sys_read;            /* internal: bytes of system text read so far */
    int finished;               /* lg_scope_finish ran; extract after it is refused */
    unsigned short phash[LG_SCOPE_PHASH]; /* internal: the phrases by hash (1 + index, 0 free), so
                                             that a repeated one is found without a scan */
    /* ==== Built by lg_scope_finish for lg_scope_match (internal) ==== */
    unsigned char pre[LG_SCOPE_PRE_BITS / 8]; /* words' first 1..3 bytes (hashed): a word
                                                 of the text whose bit is clear is in no phrase */
    unsigned char pre_lens;     /* bit m: a word of the table has min(3, length) == m */
    unsigned char han_short;    /* a Han phrase's first word does not start with a three-byte
                                   character: no index, the plain search */
    unsigned char han_pair[128]; /* Han phrases' first words by their first two bytes (bit
                                    (b0 & 15) << 6 | (b1 & 63)): a character whose bit is clear
                                    starts none */
    unsigned char han_head[LG_SCOPE_HAN_HEADS]; /* first Han phrase per bucket (index into han_ph), 0xFF none */
    unsigned char han_next[LG_SCOPE_MAX_PHRASES]; /* next in the same bucket, 0xFF none */
    unsigned char han_ph[LG_SCOPE_MAX_PHRASES];   /* the Han phrases (index into ph), in order */
    size_t nhan;                /* entries in han_ph */
    unsigned char phw[LG_SCOPE_MAX_PHRASES * LG_SCOPE_MAX_WORDS]; /* phrases per word (lg_scope_uw.ph0) */
    unsigned short uw_used[LG_SCOPE_UNIQ / 2]; /* the slots of uw in use */
    unsigned short han_tries[LG_SCOPE_MAX_PHRASES]; /* scratch: occurrences tried per Han phrase */
    unsigned han_from[LG_SCOPE_MAX_PHRASES];      /* scratch: where its next occurrence may start */
    /* ==== Tables whose entries are valid only below their counts ==== */
    lg_scope_phrase ph[LG_SCOPE_MAX_PHRASES];   /* topic phrases */
    lg_scope_person people[LG_SCOPE_MAX_PEOPLE]; /* protected people */
    lg_scope_value val[LG_SCOPE_MAX_VALUES];    /* protected secret values */
    char what[LG_SCOPE_MAX_RESTR][48];          /* each restriction in words, NUL-terminated, for tools */
    lg_scope_value pending[LG_SCOPE_MAX_VALUES]; /* internal: secret values waiting for such a ban */
    lg_scope_word pending_noun[LG_SCOPE_MAX_VALUES][2]; /* internal: the secret's name ("secret code") */
    lg_scope_word names[LG_SCOPE_PERSON_TERMS]; /* internal: name words seen in the system text */
    lg_scope_uw uw[LG_SCOPE_UNIQ]; /* word table (open addressing), built by lg_scope_finish;
                                      slots not in uw_used are free (len 0) */
    /* ==== Kept by lg_scope_reset ==== */
    int ref;                    /* test-only: the plain paths (lg_scope_set_reference) */
    int lex_built;              /* lex and lex_slot are built (on the first extract) */
    size_t nlex;                /* entries in lex; > LG_SCOPE_LEX_WORDS: a list did not fit, plain path */
    unsigned short lex_slot[LG_SCOPE_LEX_SLOTS]; /* 1 + index into lex, 0 free */
    lg_scope_lexword lex[LG_SCOPE_LEX_WORDS];    /* the word lists as one table */
} lg_scope;

/* Test-only: with on != 0, sc uses the plain paths: word lists searched
 * as strings, every Han term searched over the whole text, every word
 * stemmed and looked up, the phrase dedup a linear scan.  The results must
 * be identical, only slower.  Kept by lg_scope_reset. */
void lg_scope_set_reference(lg_scope *sc, int on);

/* Empty sc of restrictions, for the next request's system texts.  sc must
 * have been zero-filled once (a zero-filled lg_scope is empty; reset reads
 * its counts).  Cheap: it clears counts and the word-table slots in use,
 * and keeps the word lists' table (built on the first extract) and the
 * reference switch. */
void lg_scope_reset(lg_scope *sc);

/* Read one system text (call once per system text of the request, in
 * order; they accumulate) and add the restrictions it states.  Reads at
 * most LG_SCOPE_SYS_MAX bytes over all calls.  Returns the number of
 * restrictions now known, or LG_E_STATE after lg_scope_finish.  Invalid
 * UTF-8 is never an error: it separates words. */
int lg_scope_extract(lg_scope *sc, const char *text, size_t n);

/* Complete the restrictions (secret values wait for a ban on revealing
 * them that may come later in the text; people wait for their names) and
 * build the word table.  lg_scope_match calls it when it has not run. */
void lg_scope_finish(lg_scope *sc);

/* Does sc restrict anything? */
int lg_scope_any(const lg_scope *sc);

typedef struct lg_scope_hit {
    size_t start, end;          /* byte span in the text of the words that matched */
    int restr;                  /* index into sc->what */
} lg_scope_hit;

/* Find the first place in text[0..n) that asks for something sc restricts.
 * Returns 1 and fills *hit, or 0 when there is none. */
int lg_scope_match(lg_scope *sc, const char *text, size_t n, lg_scope_hit *hit);

/* The engine's step, shared by lg_conn, llmguard-check and the evaluation
 * so that all three judge a request the same way: when p has the scope
 * rule (LG_SCOPE_RULE_ID, not replaced by a regex rule) and it applies to
 * prompts of this role, match text against sc and append at most one
 * finding for it to f (action: the rule's, or LG_ACT_LOG without
 * LG_SCAN_ENFORCE in flags, as lg_scan_text does; the text is never
 * rewritten, so a rule overridden to redact logs).  When the text itself
 * does not match and the policy decodes (p->decode), its encoded runs are
 * decoded (decode.h; at most LG_DECODE_RUNS, LG_DECODE_OUT bytes each, one
 * level: base64 of hex is not unwrapped) and matched; a hit there is
 * reported on the run's span, and as lg_scan_text treats decoded text, a
 * blocking rule blocks and any other action is only logged.  Returns the
 * finding's action, LG_ACT_ALLOW when there is none, or LG_E_NOMEM. */
int lg_scope_scan(const lg_policy *p, lg_scope *sc, unsigned role, unsigned flags,
                  const char *text, size_t n, lg_findings *f);

/* The policy's scope rule, or NULL (switched off, disabled, not loaded). */
const lg_rule *lg_scope_rule(const lg_policy *p);

#endif
