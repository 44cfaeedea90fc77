/*
 * graceclient.c: the lesson's client, reconstructed in C from the lesson's description
 * (shared/LESSON.md in this project), for the interoperability tests in test_interop.py.
 * Not the course's file: written from the description of its behaviour and output,
 * including its flaws (commands compared on their first 8 / 5 characters; standard-input
 * EOF makes select() return at once, forever).
 *
 * Test-only deviations, through optional environment variables (unset = the lesson):
 *   GRACE_PORT           server port (default SERV_PORT 43211), so tests can use free ports
 *   GRACE_CLOSE_WAIT_MS  the sleep after `close` in milliseconds (default 6000, the lesson's)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <error.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SERV_PORT 43211
#define MAXLINE 4096

static long env_number(const char *name, long fallback) {
    const char *text = getenv(name);
    return text != NULL && *text != '\0' ? strtol(text, NULL, 10) : fallback;
}

int main(int argc, char **argv) {
    if (argc != 2)
        error(1, 0, "usage: graceclient <IPaddress>");

    /* [connect] */
    int socket_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in server_addr;
    memset(&server_addr, 0, sizeof(server_addr));
    server_addr.sin_family = AF_INET;
    server_addr.sin_port = htons((unsigned short) env_number("GRACE_PORT", SERV_PORT));
    inet_pton(AF_INET, argv[1], &server_addr.sin_addr);
    if (connect(socket_fd, (struct sockaddr *) &server_addr, sizeof(server_addr)) < 0)
        error(1, errno, "connect failed ");

    char send_line[MAXLINE], recv_line[MAXLINE + 1];
    fd_set readmask, allreads;
    FD_ZERO(&allreads);
    FD_SET(0, &allreads);
    FD_SET(socket_fd, &allreads);
    for (;;) {
        /* [select] standard input and the socket at once */
        readmask = allreads;
        if (select(socket_fd + 1, &readmask, NULL, NULL, NULL) <= 0)
            error(1, errno, "select failed");

        if (FD_ISSET(socket_fd, &readmask)) { /* [socket] */
            int n = read(socket_fd, recv_line, MAXLINE);
            if (n < 0)
                error(1, errno, "read error");
            else if (n == 0)
                error(1, 0, "server terminated \n");
            recv_line[n] = '\0';
            fputs(recv_line, stdout);
            fputs("\n", stdout);
        }

        if (FD_ISSET(0, &readmask) && fgets(send_line, MAXLINE, stdin) != NULL) { /* [stdin] */
            if (strncmp(send_line, "shutdown", 8) == 0) {
                FD_CLR(0, &allreads);
                if (shutdown(socket_fd, SHUT_WR))
                    error(1, errno, "shutdown failed");
            } else if (strncmp(send_line, "close", 5) == 0) {
                FD_CLR(0, &allreads);
                if (close(socket_fd))
                    error(1, errno, "close failed");
                long ms = env_number("GRACE_CLOSE_WAIT_MS", 6000);
                struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};
                nanosleep(&pause, NULL);
                exit(0);
            } else {
                size_t i = strlen(send_line);
                if (i > 0 && send_line[i - 1] == '\n')
                    send_line[i - 1] = '\0';
                printf("now sending %s\n", send_line);
                ssize_t rt = write(socket_fd, send_line, strlen(send_line));
                if (rt < 0)
                    error(1, errno, "write failed ");
                printf("send bytes: %zd \n", rt);
            }
        }
    }
}
