/* A trivial program; built static by mk/shim.mk so llmguard-run's "cannot
 * guard a statically linked program" warning has something to detect. */
#include <stdio.h>

int main(void)
{
    puts("hello from a static binary");
    return 0;
}
