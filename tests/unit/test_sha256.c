/* SHA-256 against FIPS 180-4 example vectors and lengths around the
 * padding boundaries (55/56 bytes fit one block or not; 63/64/65 cross a
 * block), each fed whole and in uneven pieces, through the portable block
 * function and, where the CPU has them, the SHA instructions.  The
 * expected digests were computed with Python's hashlib. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "sha256.h"

static void hex_split(const unsigned char *m, size_t n, size_t piece, char out[65])
{
    lg_sha256 s;
    uint8_t d[32];
    lg_sha256_init(&s);
    for (size_t i = 0; i < n; i += piece)
        lg_sha256_update(&s, m + i, n - i < piece ? n - i : piece);
    lg_sha256_final(&s, d);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void fips_examples(void)
{
    char h[65];
    lg_sha256_hex("abc", 3, h);
    cr_assert_str_eq(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    lg_sha256_hex(m, strlen(m), h);
    cr_assert_str_eq(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    static unsigned char a[1000000];
    memset(a, 'a', sizeof a);
    hex_split(a, sizeof a, 4093, h);
    cr_assert_str_eq(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void padding_boundaries(void)
{
    static const struct {
        size_t n;
        const char *hex;
    } v[] = {
        {0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {3, "ce562c676ea7aba9812f54db146b0096011bf3e423edfb0a6f8fb2b02674a801"},
        {55, "16fa57a0a3423a715d594516339f36189d6b5f93754a9714fef202616a9fabfe"},
        {56, "c37b44e5f1b18554b36966f4f8e08bfbf3164c4b6c10374d12d89850892073c5"},
        {63, "bbba992d2c85af960fb2987a1fd05e0aa82a3db3c740dd8982a9e273b75e36a3"},
        {64, "66bd4633ed6f71c4ecfa4763bf7ba1c8ec7612de9aa6c0578a7b675207c71e0b"},
        {65, "9f7dc47107b750a1f3d35db5d9547f24ef40da5b731b9540d4f43710a154f6c9"},
        {119, "a3ed307b730fa77c07531300c6e4a282330011d4d4caf6bb7b63ae05950f4b66"},
        {120, "8e3b15d9fea7472655aa069620b7f8c2e55ee1499f763200a7515fe826e99d20"},
        {1000, "095ecb62e30793ab4b954cd6a0586d0cc91f7ea5b1332694d8da780e98676d78"},
    };
    unsigned char m[1000];
    for (size_t i = 0; i < sizeof m; i++)
        m[i] = (unsigned char)((i * 7 + 1) % 256);
    static const size_t pieces[] = {1, 7, 64, 1000};
    for (size_t k = 0; k < sizeof v / sizeof v[0]; k++)
        for (size_t p = 0; p < sizeof pieces / sizeof pieces[0]; p++) {
            char h[65];
            hex_split(m, v[k].n, pieces[p], h);
            cr_assert_str_eq(h, v[k].hex, "%zu bytes in pieces of %zu", v[k].n, pieces[p]);
        }
}

/* Each test runs its vectors with the portable code, then with the
 * instructions when present, and leaves the default (instructions) set. */
Test(sha256, fips_examples)
{
    lg__sha256_use_hw(0);
    fips_examples();
    if (lg__sha256_use_hw(1))
        fips_examples();
}

Test(sha256, padding_boundaries_whole_and_split)
{
    lg__sha256_use_hw(0);
    padding_boundaries();
    if (lg__sha256_use_hw(1))
        padding_boundaries();
}

/* Many blocks in one update (the instructions' loop over blocks), after a
 * partial block, and the two implementations agreeing on every length up
 * to three blocks. */
Test(sha256, implementations_agree)
{
    unsigned char m[4096];
    for (size_t i = 0; i < sizeof m; i++)
        m[i] = (unsigned char)(i * 131 + 7);
    static const size_t pieces[] = {1, 3, 63, 64, 65, 200, 4096};
    for (size_t n = 0; n <= 192; n++) {
        char a[65], b[65];
        lg__sha256_use_hw(0);
        lg_sha256_hex(m, n, a);
        if (lg__sha256_use_hw(1)) {
            lg_sha256_hex(m, n, b);
            cr_assert_str_eq(a, b, "%zu bytes", n);
        }
    }
    char ref[65];
    lg__sha256_use_hw(0);
    hex_split(m, sizeof m, sizeof m, ref);
    /* hashlib.sha256(bytes((i * 131 + 7) & 255 for i in range(4096))) */
    cr_assert_str_eq(ref, "edc9983a5f8a590052203d12c58e8d367f7c694a8746b7b9ef87bcc8f5af9e9f");
    for (int hw = 0; hw < 2; hw++) {
        if (!lg__sha256_use_hw(hw) && hw)
            break;
        for (size_t p = 0; p < sizeof pieces / sizeof pieces[0]; p++) {
            char h[65];
            hex_split(m, sizeof m, pieces[p], h);
            cr_assert_str_eq(h, ref, "hw %d, pieces of %zu", hw, pieces[p]);
        }
    }
    lg__sha256_use_hw(1);
}
