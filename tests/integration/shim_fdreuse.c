/* fd reuse after a raw close: a tracked socket with bytes held by the shim
 * is closed with syscall(SYS_close) (as Node does), the number is reused for
 * a file, and every byte written to and read from that file must be the
 * file's: nothing misrouted into the engine or served from the old socket's
 * pending bytes.  Usage: shim_fdreuse PORT FILE */
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "shim_common.h"

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    int port = atoi(argv[1]);
    for (int round = 0; round < 20; round++) {
        int fd = shim_connect(port);
        if (fd < 0 || shim_send_request(fd, port, "fd reuse round"))
            return fprintf(stderr, "connect/send failed\n"), 1;
        char one;
        if (recv(fd, &one, 1, 0) != 1) /* the shim now holds the rest */
            return fprintf(stderr, "recv failed\n"), 1;
        syscall(SYS_close, fd);
        int f = open(argv[2], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (f != fd)
            return fprintf(stderr, "fd %d not reused (got %d)\n", fd, f), 1;
        char data[10000];
        for (size_t i = 0; i < sizeof data; i++)
            data[i] = (char)('a' + (i * 7 + (size_t)round) % 26);
        for (size_t off = 0; off < sizeof data; off += 1000)
            if (write(f, data + off, 1000) != 1000)
                return fprintf(stderr, "write failed\n"), 1;
        struct pollfd p = {.fd = f, .events = POLLIN};
        if (poll(&p, 1, 1000) != 1)
            return fprintf(stderr, "poll on file\n"), 1;
        lseek(f, 0, SEEK_SET);
        char back[sizeof data + 10];
        ssize_t got = 0, k;
        while ((k = read(f, back + got, sizeof back - (size_t)got)) > 0)
            got += k;
        if (got != (ssize_t)sizeof data || memcmp(back, data, sizeof data))
            return fprintf(stderr, "round %d: file content wrong (%zd bytes)\n", round, got), 1;
        close(f);
        struct stat st;
        if (stat(argv[2], &st) || st.st_size != (off_t)sizeof data)
            return fprintf(stderr, "file size %lld\n", (long long)st.st_size), 1;
    }
    puts("fdreuse ok");
    return 0;
}
