/* SHA-256 against FIPS 180-4 example vectors and lengths around the
 * padding boundaries (55/56 bytes fit one block or not; 63/64/65 cross a
 * block), each fed whole and in uneven pieces.  The expected digests were
 * computed with Python's hashlib. */
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

Test(sha256, fips_examples)
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

Test(sha256, padding_boundaries_whole_and_split)
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
