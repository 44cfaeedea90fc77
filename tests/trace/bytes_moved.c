/* Both ends of one loopback TCP connection in one process, moving bytes with the calls that
   strace prints differently from read/write: sendmmsg, recvmmsg, splice (socket -> pipe ->
   socket), sendfile. Prints nothing; exits 0 when every byte arrived. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what) { perror(what); exit(2); }

static void read_exactly(int fd, char *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0) die("read");
        got += (size_t)r;
    }
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: bytes_moved FILE\n"); return 2; }
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) || listen(listener, 1)) die("listen");
    getsockname(listener, (struct sockaddr *)&addr, &len);
    int client = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(client, (struct sockaddr *)&addr, sizeof addr)) die("connect");
    /* the peer's address lets trace attach this socket even when the program has ended before
       its inode could be looked up (it lives a few milliseconds) */
    struct sockaddr_in peer;
    socklen_t peer_len = sizeof peer;
    int server = accept(listener, (struct sockaddr *)&peer, &peer_len);
    if (server < 0) die("accept");
    close(listener);

    /* sendmmsg: three messages, 3 + 3 + 5 bytes */
    char *words[] = {"one", "two", "three"};
    struct iovec iov[3];
    struct mmsghdr out[3];
    memset(out, 0, sizeof out);
    for (int i = 0; i < 3; i++) {
        iov[i].iov_base = words[i];
        iov[i].iov_len = strlen(words[i]);
        out[i].msg_hdr.msg_iov = &iov[i];
        out[i].msg_hdr.msg_iovlen = 1;
    }
    if (sendmmsg(client, out, 3, 0) != 3) die("sendmmsg");

    /* recvmmsg until the 11 bytes are in */
    char buf[2][64];
    size_t total = 0;
    while (total < 11) {
        struct iovec in_iov[2] = {{buf[0], sizeof buf[0]}, {buf[1], sizeof buf[1]}};
        struct mmsghdr in[2];
        memset(in, 0, sizeof in);
        for (int i = 0; i < 2; i++) { in[i].msg_hdr.msg_iov = &in_iov[i]; in[i].msg_hdr.msg_iovlen = 1; }
        int n = recvmmsg(server, in, 2, MSG_WAITFORONE, NULL);
        if (n <= 0) die("recvmmsg");
        for (int i = 0; i < n; i++) total += in[i].msg_len;
    }

    /* splice: the client's 6 bytes go socket -> pipe -> socket, back to the client */
    int pipefd[2];
    if (pipe(pipefd)) die("pipe");
    if (write(client, "splice", 6) != 6) die("write");
    ssize_t moved = 0;
    while (moved < 6) {
        ssize_t n = splice(server, NULL, pipefd[1], NULL, 6 - moved, 0);
        if (n <= 0) die("splice in");
        moved += n;
    }
    if (splice(pipefd[0], NULL, server, NULL, 6, 0) != 6) die("splice out");
    char back[6];
    read_exactly(client, back, 6);

    /* sendfile: the file's bytes to the client */
    int file = open(argv[1], O_RDONLY);
    if (file < 0) die("open");
    off_t size = lseek(file, 0, SEEK_END);
    off_t offset = 0;
    while (offset < size)
        if (sendfile(server, file, &offset, (size_t)(size - offset)) <= 0) die("sendfile");
    char *content = malloc((size_t)size);
    read_exactly(client, content, (size_t)size);

    shutdown(server, SHUT_WR);
    char end;
    if (read(client, &end, 1) != 0) die("eof");
    close(client);
    close(server);
    return 0;
}
