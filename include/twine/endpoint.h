/* SPDX-License-Identifier: MIT */
/*
 * Endpoints: where to listen or connect, written as Twisted's "strports"
 * strings, so an operator says "tcp:9000:interface=127.0.0.1" or
 * "unix:/run/app.sock:mode=660" instead of the program hard-coding it.
 *
 * Grammar. A description is segments separated by ':'. The first names the
 * type; the others are arguments, either positional ("tcp:9000") or
 * key=value ("tcp:port=9000"); positional arguments fill, in order, the
 * parameters not given by key. A backslash makes the next character
 * literal, so "unix:/tmp/a\:b" is the path "/tmp/a:b" and an IPv6 address
 * is written "interface=\:\:1". A bare port ("9000") means "tcp:9000".
 *
 * Servers (tw_endpoint_parse_server):
 *   tcp:PORT[:interface=ADDR][:backlog=N]    interface defaults to all IPv4
 *   tcp6:PORT[:backlog=N][:interface=ADDR]   interface defaults to "::"
 *   unix:PATH[:mode=OCTAL][:backlog=N][:lockfile=0|1]
 *   udp:PORT[:interface=ADDR]
 *   unixgram:PATH[:mode=OCTAL]               UNIX datagrams
 *                                            (tw_endpoint_listen_udp)
 *   systemd:domain=INET|INET6|UNIX:index=N   socket activation
 *   haproxy:ENDPOINT                         any of the above but udp, whose
 *                                            connections start with a PROXY
 *                                            header (<twine/proxy.h>)
 *   ssl:PORT[:privateKey=KEY.pem][:certKey=CERT.pem][:extraCertChain=CHAIN.pem]
 *       [:interface=ADDR][:backlog=N]        TLS over tcp, as Twisted's ssl:
 *                                            (privateKey defaults to
 *                                            server.pem, certKey to privateKey)
 * Clients (tw_endpoint_parse_client):
 *   tcp:HOST:PORT[:timeout=SECONDS][:bindAddress=ADDR][:attemptDelay=SECONDS]
 *                                                        (or host=, port=)
 *   unix:PATH[:timeout=SECONDS]
 *   unixgram:PATH[:bindAddress=PATH]         UNIX datagrams, connected
 *                                            (tw_endpoint_connect_datagram)
 *   tls:HOST:PORT[:timeout=SECONDS][:bindAddress=ADDR][:trustRoots=PATH]
 *       [:certificate=CERT.pem][:privateKey=KEY.pem]   TLS over tcp, as
 *                                            Twisted's tls: (the server is
 *                                            verified against trustRoots, or
 *                                            the system's store, and HOST)
 *
 * TLS endpoints parse here but listen and connect through <twine/tls.h>
 * (tw_listen_tls(), tw_connect_tls()); tw_endpoint_listen() and
 * tw_endpoint_connect() refuse them rather than run them in the clear.
 *
 * A UNIX PATH (or bindAddress) that starts with '@' is an abstract name on
 * Linux ("unix:@app"), with no file: no mode, no lockfile, nothing to
 * remove (see address.h).
 *
 * A tcp client whose HOST has several addresses races them as Happy
 * Eyeballs (RFC 8305) does, IPv6 first (see connect.h): attemptDelay is the
 * time between the starts of two attempts, 0.25 seconds unless given (at
 * least 0.01), and timeout bounds the lookup and every attempt together.
 *
 * UNIX servers (stream or datagram) remove a stale socket file (one nobody accepts on any more)
 * before binding, refuse a live one with -EADDRINUSE, apply mode to the
 * socket file, and remove the file when the listener closes. lockfile=1
 * also holds an flock on PATH.lock while listening, so two servers never
 * race for one path.
 *
 * A parsed endpoint is a plain value (no allocation, nothing to free) that
 * the caller may inspect, copy, or fill in by hand.
 */
#ifndef TWINE_ENDPOINT_H
#define TWINE_ENDPOINT_H

#include <stddef.h>
#include <twine/common.h>
#include <twine/deferred.h>
#include <twine/listener.h>
#include <twine/protocol.h>
#include <twine/reactor.h>
#include <twine/udp.h>

TW_BEGIN_DECLS

typedef enum tw_endpoint_type {
    TW_ENDPOINT_TCP = 1, /**< TCP; IPv6 too when the address is IPv6 */
    TW_ENDPOINT_TCP6,    /**< TCP over IPv6 (servers) */
    TW_ENDPOINT_UNIX,    /**< UNIX-domain stream socket */
    TW_ENDPOINT_UDP,     /**< UDP (servers) */
    TW_ENDPOINT_SYSTEMD, /**< a socket passed by systemd (servers) */
    TW_ENDPOINT_UNIXGRAM /**< UNIX-domain datagram socket */
} tw_endpoint_type;

/** Room for a host name (253 characters at most in DNS) and its NUL. */
#define TW_ENDPOINT_HOST_MAX 256
/** Room for a UNIX socket path and its NUL (sun_path). */
#define TW_ENDPOINT_PATH_MAX 108
/** Room for the path of a TLS endpoint's certificate or key file and its NUL. */
#define TW_ENDPOINT_FILE_MAX 512

typedef struct tw_endpoint {
    tw_endpoint_type type;
    int client; /**< 1 for a client endpoint, 0 for a server one */
    /** Clients: the host name or numeric address to connect to. */
    char host[TW_ENDPOINT_HOST_MAX];
    /** Servers: the numeric address to listen on; "" for the default. */
    char interface[TW_ENDPOINT_HOST_MAX];
    int port;                         /**< tcp, tcp6, udp; otherwise -1 */
    char path[TW_ENDPOINT_PATH_MAX];  /**< unix, unixgram; "@name" for an abstract name */
    int backlog;  /**< servers: listen(2) backlog; 0 for the default */
    int mode;     /**< unix and unixgram servers: socket file permissions; -1 leaves them to the umask */
    int lockfile; /**< unix servers: hold PATH.lock while listening */
    /** Clients: seconds before the attempt fails; 0 for none. Default 30. */
    double timeout;
    /**
     * tcp clients: numeric local address to bind to; unixgram clients: the
     * UNIX path (or @name) to bind, where the peer's answers come; "" for
     * none.
     */
    char bind_address[TW_ENDPOINT_HOST_MAX];
    /**
     * tcp clients: seconds between the starts of two connection attempts
     * to the host's addresses (tw_connect_options.attempt_delay). Default
     * TW_CONNECT_ATTEMPT_DELAY; 0 means that default too.
     */
    double attempt_delay;
    int domain; /**< systemd: AF_INET, AF_INET6 or AF_UNIX */
    int index;  /**< systemd: which passed descriptor (the first is 0, at fd 3) */
    /**
     * Servers: 1 when connections start with a PROXY protocol header (the
     * "haproxy:" prefix); listening sets tw_listen_options.proxy_protocol.
     */
    int proxy_protocol;
    /** 1 for TLS endpoints (ssl: servers, tls: clients); type is then TCP. */
    int tls;
    /** TLS: the PEM private key (servers' privateKey, clients' privateKey). */
    char private_key[TW_ENDPOINT_FILE_MAX];
    /** TLS: the PEM certificate (servers' certKey, clients' certificate); "" for none. */
    char certificate[TW_ENDPOINT_FILE_MAX];
    /** TLS servers: PEM intermediate certificates (extraCertChain); "" for none. */
    char cert_chain[TW_ENDPOINT_FILE_MAX];
    /** TLS clients: PEM file or directory of trusted CAs (trustRoots); "" for the system's. */
    char trust_roots[TW_ENDPOINT_FILE_MAX];
} tw_endpoint;

/**
 * Longest text tw_endpoint_format() writes, with its NUL: every text field
 * at its longest with each byte escaped (two bytes), the TLS files
 * included, and the option names and numbers.
 */
#define TW_ENDPOINT_STRLEN 8192

/**
 * Parse a server description.
 * @param out filled on success; left in an unspecified state on error.
 * @param err if non-NULL, receives on error one sentence naming the bad
 *        segment, e.g. "bad endpoint 'tcp:99999': port '99999' is not a
 *        number from 0 to 65535" (truncated to @p errlen).
 * @return 0, or -EINVAL.
 */
TW_API int tw_endpoint_parse_server(const char *s, tw_endpoint *out, char *err, size_t errlen);

/** Parse a client description. As tw_endpoint_parse_server(). */
TW_API int tw_endpoint_parse_client(const char *s, tw_endpoint *out, char *err, size_t errlen);

/**
 * Describe @p e for logs, as a description that parses back to the same
 * endpoint ("tcp:9000:interface=127.0.0.1", "unix:/tmp/a\:b:mode=0600").
 * @return @p buf, always NUL-terminated (truncated if @p len is short).
 */
TW_API char *tw_endpoint_format(const tw_endpoint *e, char *buf, size_t len);

/**
 * How many listening descriptors systemd passed to this process by socket
 * activation, read from LISTEN_PID and LISTEN_FDS as sd_listen_fds(3)
 * reads them; they are descriptors 3 to 3 + count - 1. The variables are
 * left as they are, so a process that hands the sockets to a child can set
 * LISTEN_PID to the child's pid. Never calls back.
 * @return the count (0 to 65536); -ENOENT when either variable is unset;
 *         -ESRCH when LISTEN_PID names another process; -EINVAL when either
 *         is not a whole number in range.
 */
TW_API int tw_endpoint_activated_fds(void);

/**
 * Listen on the server endpoint @p e with @p f.
 *
 * @param opts NULL for the defaults; the endpoint's backlog, when set,
 *        replaces opts->backlog.
 * @param f borrowed; must outlive the listener (see listener.h).
 * @return a new deferred reference, or NULL when memory runs out. Listening
 *         is immediate, so the deferred has already fired on return: with
 *         the tw_listener, which the chain owns until a callback takes it
 *         with tw_result_take_value() (if nobody does, the listener is
 *         closed when the deferred is released) -- or with a failure: a
 *         negated errno such as -EADDRINUSE (message naming the endpoint),
 *         -EINVAL for a client endpoint or a bad field, -ENOENT/-EBADF for
 *         systemd activation that did not pass the descriptor asked for,
 *         -EPROTONOSUPPORT for udp and unixgram (a datagram port serves a
 *         datagram protocol, not a factory: see tw_endpoint_listen_udp()),
 *         TW_ESHUTDOWN while the reactor is stopping.
 */
TW_API tw_deferred *tw_endpoint_listen(tw_reactor *r, const tw_endpoint *e,
                                       const tw_listen_options *opts, tw_factory *f);

/**
 * Make the listening socket of the server endpoint @p e as
 * tw_endpoint_listen() would, without serving it: for a program that
 * serves it with another library (libevent's evhttp, say) or hands it to
 * a child process. tcp, tcp6 and unix endpoints are bound and listening
 * (with SO_REUSEADDR, and the stale-file rule and mode of a UNIX path); a
 * systemd endpoint gives the descriptor systemd passed. No reactor is
 * involved and nothing calls back.
 *
 * @param opts NULL for the defaults; only backlog (replaced by the
 *        endpoint's, when set), reuse_port and v6_only apply.
 * @param out receives the descriptor, non-blocking and close-on-exec. It
 *        is the caller's, who closes it, and removes a UNIX socket file,
 *        when done.
 * @param err if non-NULL, receives on error one sentence naming the
 *        endpoint, e.g. "cannot listen on tcp:9100: Address already in use".
 * @return 0, or a negated errno: -EADDRINUSE, -EACCES, ...; -EINVAL for a
 *         client, udp or unixgram endpoint, or one with lockfile or a PROXY header
 *         (which need a listener); as tw_endpoint_listen() for systemd.
 */
TW_API int tw_endpoint_bind(const tw_endpoint *e, const tw_listen_options *opts, int *out,
                            char *err, size_t errlen);

/**
 * Bind the udp or unixgram server endpoint @p e and run the datagram
 * protocol @p p on it (see udp.h); start_protocol runs before this returns.
 * @return a new deferred reference, or NULL when memory runs out. It has
 *         already fired on return: with the tw_udp_port, which the chain
 *         owns until a callback takes it with tw_result_take_value() (if
 *         nobody does, the port is closed when the deferred is released), or
 *         with a failure -- a negated errno such as -EADDRINUSE, -EINVAL for
 *         an endpoint that is not a udp or unixgram server one,
 *         TW_ESHUTDOWN while the reactor is stopping -- and then @p p is
 *         still the caller's.
 */
TW_API tw_deferred *tw_endpoint_listen_udp(tw_reactor *r, const tw_endpoint *e,
                                           tw_datagram_protocol *p);

/**
 * Connect the datagram protocol @p p to the unixgram client endpoint @p e
 * (tw_datagram_connect(), bound to its bindAddress when given);
 * start_protocol runs before this returns.
 * @return a new deferred reference, or NULL when memory runs out. It has
 *         already fired on return: with the tw_udp_port, which the chain
 *         owns until a callback takes it with tw_result_take_value() (if
 *         nobody does, the port is closed when the deferred is released), or
 *         with a failure -- -ENOENT or -ECONNREFUSED when nobody is bound at
 *         the path, -EINVAL for an endpoint that is not a unixgram client,
 *         TW_ESHUTDOWN while the reactor is stopping -- and then @p p is
 *         still the caller's.
 */
TW_API tw_deferred *tw_endpoint_connect_datagram(tw_reactor *r, const tw_endpoint *e,
                                                 tw_datagram_protocol *p);

/**
 * Connect to the client endpoint @p e with the client factory @p f; see
 * connect.h for what the factory hears.
 * @return a new deferred reference, or NULL when memory runs out. It fires
 *         from the loop with the connected protocol (borrowed, valid until
 *         the protocol is destroyed), or fails with the reason the factory's
 *         client_connection_failed() also got. Cancelling it aborts the
 *         attempt: the socket is closed, no protocol is built, and it fails
 *         with TW_ECANCELLED. A server endpoint fails at once with -EINVAL,
 *         a unixgram one with -EPROTONOSUPPORT (see
 *         tw_endpoint_connect_datagram()).
 */
TW_API tw_deferred *tw_endpoint_connect(tw_reactor *r, const tw_endpoint *e, tw_factory *f);

/**
 * tw_endpoint_parse_server() then tw_endpoint_listen(). A description that
 * does not parse gives a deferred that has already failed with -EINVAL and
 * the parser's sentence as its message.
 */
TW_API tw_deferred *tw_listen_string(tw_reactor *r, const char *description,
                                     const tw_listen_options *opts, tw_factory *f);

/**
 * tw_endpoint_parse_client() then tw_endpoint_connect(). A description that
 * does not parse gives a deferred that has already failed with -EINVAL (the
 * factory hears nothing).
 */
TW_API tw_deferred *tw_connect_string(tw_reactor *r, const char *description, tw_factory *f);

TW_END_DECLS

#endif
