/* The built-in rule packs, compiled into the library so that llmguard works
 * with no policy file at all.  Each pack is a JSON document under
 * core/packs/ (format: docs/policy.md, "Packs"), loaded by policy.c with the
 * same code as a user's file.
 *
 * Embedding: the assembler's .incbin directive copies each file into
 * .rodata at build time, followed by one NUL byte.  That needs no generated
 * source file and no Makefile rule, but it has two outside facts to respect:
 * - The paths are relative to the directory the compiler runs in, which is
 *   the repository top (the Makefile, the fuzz builds and the documented
 *   manual compile lines all run there).  Building from elsewhere fails
 *   loudly at assembly time ("file not found"), never silently.
 * - Compiler dependency files (-MMD) do not list .incbin inputs: after
 *   editing a pack, rebuild this object (touch core/packs.c, or make clean).
 * GNU as and clang's integrated assembler both accept .incbin and
 * .pushsection on ELF targets; Mach-O would need the section name
 * "__TEXT,__const" instead of .rodata. */
#include "policy.h"

#include <stddef.h>

#define LG__PACK_ASM(name)                                                \
    "    .pushsection .rodata,\"a\",@progbits\n"                          \
    "    .balign 16\n"                                                    \
    "    .globl lg__pack_" name "\n"                                      \
    "    .hidden lg__pack_" name "\n"                                     \
    "lg__pack_" name ":\n"                                                \
    "    .incbin \"core/packs/" name ".json\"\n"                          \
    "    .globl lg__pack_" name "_end\n"                                  \
    "    .hidden lg__pack_" name "_end\n"                                 \
    "lg__pack_" name "_end:\n"                                            \
    "    .byte 0\n"                                                       \
    "    .popsection\n"

__asm__(LG__PACK_ASM("injection") LG__PACK_ASM("pii") LG__PACK_ASM("secrets")
        LG__PACK_ASM("evasion") LG__PACK_ASM("output"));

#define LG__PACK_DECL(name)                                                        \
    extern const char lg__pack_##name[] __attribute__((visibility("hidden")));    \
    extern const char lg__pack_##name##_end[] __attribute__((visibility("hidden")));

LG__PACK_DECL(injection)
LG__PACK_DECL(pii)
LG__PACK_DECL(secrets)
LG__PACK_DECL(evasion)
LG__PACK_DECL(output)

static const struct {
    const char *name;
    const char *start, *end;
} packs[] = {
    {"injection", lg__pack_injection, lg__pack_injection_end},
    {"pii", lg__pack_pii, lg__pack_pii_end},
    {"secrets", lg__pack_secrets, lg__pack_secrets_end},
    {"evasion", lg__pack_evasion, lg__pack_evasion_end},
    {"output", lg__pack_output, lg__pack_output_end},
};

const char *lg_policy_pack(size_t i, const char **json, size_t *len)
{
    if (i >= sizeof packs / sizeof packs[0])
        return NULL;
    if (json)
        *json = packs[i].start;
    if (len)
        *len = (size_t)(packs[i].end - packs[i].start);
    return packs[i].name;
}
