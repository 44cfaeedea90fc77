/*
 * graceserver.c: the lesson's server, reconstructed in C from the lesson's description
 * (shared/LESSON.md in this project), for the interoperability tests in test_interop.py.
 * Not the course's file: written from the description of its behaviour and output.
 *
 * Test-only deviations, all through optional environment variables (unset = the lesson):
 *   GRACE_PORT      port to listen on (default SERV_PORT 43211); 0 lets the kernel pick and
 *                   prints "graceserver: listening on ADDRESS:PORT" to stderr, as the Python
 *                   server does with --port 0, so tests can use free ports
 *   GRACE_BIND      IPv4 address to bind (default INADDR_ANY, as in the lesson)
 *   GRACE_DELAY_MS  the "processing" sleep in milliseconds (default 5000, the lesson's 5 s)
 *   GRACE_SIGPIPE   ignore (default: the lesson's listing) | default (the course repository's
 *                   copy) | handler (the readers' handler)
 * Also: the message buffer has one byte more than MAXLINE, so that a full read can still be
 * terminated with '\0' (the lesson's program would write one byte past its buffer).
 */
#define _GNU_SOURCE /* program_invocation_name, as error(3) prints it */
#include <arpa/inet.h>
#include <errno.h>
#include <error.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SERV_PORT 43211
#define MAXLINE 4096
#define LISTENQ 1024

static int count;

/* SIGINT: report how many messages were received, and exit 0. */
static void sig_int(int signo) {
    (void) signo;
    printf("\nreceived %d datagrams\n", count);
    exit(0);
}

/* The readers' SIGPIPE handler: it runs, then the write returns EPIPE. */
static void sig_pipe(int signo) {
    (void) signo;
    printf("caught SIGPIPE\n");
}

static long env_number(const char *name, long fallback) {
    const char *text = getenv(name);
    return text != NULL && *text != '\0' ? strtol(text, NULL, 10) : fallback;
}

static void processing(long ms) {
    struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&pause, &pause) < 0 && errno == EINTR) {
    }
}

int main(void) {
    /* [bind] socket, bind to SERV_PORT on every address, listen */
    int listenfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in server_addr;
    memset(&server_addr, 0, sizeof(server_addr));
    server_addr.sin_family = AF_INET;
    server_addr.sin_addr.s_addr = htonl(INADDR_ANY);
    const char *bind_to = getenv("GRACE_BIND");
    if (bind_to != NULL && inet_pton(AF_INET, bind_to, &server_addr.sin_addr) != 1)
        error(1, 0, "GRACE_BIND: not an IPv4 address");
    server_addr.sin_port = htons((unsigned short) env_number("GRACE_PORT", SERV_PORT));

    int on = 1;
    setsockopt(listenfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (bind(listenfd, (struct sockaddr *) &server_addr, sizeof(server_addr)) < 0)
        error(1, errno, "bind failed ");
    if (listen(listenfd, LISTENQ) < 0)
        error(1, errno, "listen failed ");
    if (server_addr.sin_port == 0) { /* test-only: say which port the kernel chose */
        socklen_t len = sizeof(server_addr);
        char text[INET_ADDRSTRLEN];
        getsockname(listenfd, (struct sockaddr *) &server_addr, &len);
        inet_ntop(AF_INET, &server_addr.sin_addr, text, sizeof(text));
        fprintf(stderr, "%s: listening on %s:%d\n", program_invocation_name, text,
                ntohs(server_addr.sin_port));
    }

    /* [signals] SIGINT reports the count; SIGPIPE ignored in the lesson's listing */
    signal(SIGINT, sig_int);
    const char *mode = getenv("GRACE_SIGPIPE");
    if (mode == NULL || strcmp(mode, "ignore") == 0)
        signal(SIGPIPE, SIG_IGN);
    else if (strcmp(mode, "handler") == 0)
        signal(SIGPIPE, sig_pipe);
    else if (strcmp(mode, "default") != 0)
        error(1, 0, "GRACE_SIGPIPE: ignore, default or handler");

    /* [accept] one connection */
    struct sockaddr_in client_addr;
    socklen_t client_len = sizeof(client_addr);
    int connfd = accept(listenfd, (struct sockaddr *) &client_addr, &client_len);
    if (connfd < 0)
        error(1, errno, "accept failed ");

    long delay_ms = env_number("GRACE_DELAY_MS", 5000);
    char message[MAXLINE + 1];
    char send_line[MAXLINE + 8];
    count = 0;
    for (;;) {
        /* [loop] one read is one message */
        int n = read(connfd, message, MAXLINE);
        if (n < 0)
            error(1, errno, "error read");
        else if (n == 0)
            error(1, 0, "client closed \n"); /* [eof] */
        message[n] = '\0';
        printf("received %d bytes: %s\n", n, message);
        count++;

        /* [reply] "processing", then the answer */
        snprintf(send_line, sizeof(send_line), "Hi, %s", message);
        processing(delay_ms);
        /* As the lesson's listing: print the result first, check it after. Its -1, printed
         * as the course's %zu of an int, shows as 4294967295 on x86-64 Linux. */
        int sent = send(connfd, send_line, strlen(send_line), 0);
        int send_errno = errno;
        printf("send bytes: %u \n", (unsigned) sent);
        if (sent < 0)
            error(1, send_errno, "error write");
    }
}
