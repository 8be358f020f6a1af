/* SPDX-License-Identifier: MIT */
/*
 * Multicast and broadcast on UDP ports, on loopback only: a port that
 * joined a group on 127.0.0.1's interface receives what another port sends
 * to the group, and stops after leaving it; TTL and loopback mode read
 * back what was set (on loopback the mode cannot be seen at work: what lo
 * sends comes back in as input); broadcast to 127.255.255.255 needs the port's permission.
 * IPv6 joins and leaves on ::1's interface; its delivery is checked where
 * the kernel routes IPv6 multicast over loopback.
 *
 * Before anything runs, a plain socket tries the IPv4 path; a kernel that
 * refuses multicast on loopback skips the program (exit 77) saying why.
 */
#include "config.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <twine.h>
#include <twine/multicast.h>
#include <twine/udp.h>

#include "testutil.h"

#define GROUP4 "239.255.42.99"
#define GROUP6 "ff12::7477:696e"

typedef struct {
    tw_datagram_protocol base;
    int received;
    char last[64];
    size_t last_len;
} member;

static void m_received(tw_datagram_protocol *p, const void *data, size_t len,
                       const tw_address *from)
{
    (void)from;
    member *m = (member *)p;
    m->received++;
    m->last_len = len < sizeof m->last ? len : sizeof m->last;
    memcpy(m->last, data, m->last_len);
}

static const tw_datagram_ops m_ops = {NULL, m_received, NULL, NULL, NULL};

static tw_udp_port *bind_member(tw_reactor *r, const char *host, int port, member *m)
{
    memset(m, 0, sizeof *m);
    m->base.ops = &m_ops;
    tw_address a;
    ck_assert_int_eq(tw_address_from_ip(&a, host, port), 0);
    tw_udp_port *u;
    ck_assert_int_eq(tw_udp_listen(r, &a, &m->base, &u), 0);
    return u;
}

static int port_of(tw_udp_port *u)
{
    tw_address a;
    tw_udp_port_address(u, &a);
    return tw_address_port(&a);
}

static void settle(tw_reactor *r, member *m, int want)
{
    long long end = tu_now_ms() + (want > 0 ? 2000 : 150);
    while (tu_now_ms() < end && (want == 0 || m->received < want))
        tw_reactor_iterate(r, 0.01);
}

static tw_address addr(const char *host, int port)
{
    tw_address a;
    ck_assert_int_eq(tw_address_from_ip(&a, host, port), 0);
    return a;
}

START_TEST(test_a_member_receives_the_group_on_loopback_until_it_leaves)
{
    tw_reactor *r = tw_reactor_new();
    member rx, tx;
    tw_udp_port *in = bind_member(r, "0.0.0.0", 0, &rx);
    tw_udp_port *out = bind_member(r, "127.0.0.1", 0, &tx);
    tw_address group = addr(GROUP4, port_of(in)), lo = addr("127.0.0.1", 0);
    ck_assert_int_eq(tw_udp_join_group(in, &group, &lo), 0);
    ck_assert_int_eq(tw_udp_join_group(in, &group, &lo), -EADDRINUSE);
    ck_assert_int_eq(tw_udp_set_outgoing_interface(out, &lo), 0);
    ck_assert_int_eq(tw_udp_write(out, "to all", 6, &group), 0);
    settle(r, &rx, 1);
    ck_assert_int_eq(rx.received, 1);
    ck_assert_mem_eq(rx.last, "to all", 6);

    ck_assert_int_eq(tw_udp_leave_group(in, &group, &lo), 0);
    ck_assert_int_eq(tw_udp_write(out, "again", 5, &group), 0);
    settle(r, &rx, 0);
    ck_assert_int_eq(rx.received, 1); /* no longer a member */
    ck_assert_int_lt(tw_udp_leave_group(in, &group, &lo), 0);
    tw_udp_port_close(in);
    tw_udp_port_close(out);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_ttl_and_loopback_mode_read_back_and_a_port_hears_its_own_group)
{
    tw_reactor *r = tw_reactor_new();
    member m;
    tw_udp_port *u = bind_member(r, "0.0.0.0", 0, &m);
    ck_assert_int_eq(tw_udp_get_ttl(u), 1); /* the kernel's default: this network only */
    ck_assert_int_eq(tw_udp_set_ttl(u, 7), 0);
    ck_assert_int_eq(tw_udp_get_ttl(u), 7);
    ck_assert_int_eq(tw_udp_set_ttl(u, 256), -EINVAL);
    ck_assert_int_eq(tw_udp_get_loopback_mode(u), 1);

    tw_address group = addr(GROUP4, port_of(u)), lo = addr("127.0.0.1", 0);
    ck_assert_int_eq(tw_udp_join_group(u, &group, &lo), 0);
    ck_assert_int_eq(tw_udp_set_outgoing_interface(u, &lo), 0);
    ck_assert_int_eq(tw_udp_write(u, "mine", 4, &group), 0);
    settle(r, &m, 1);
    ck_assert_int_eq(m.received, 1); /* its own datagram, looped back */
    /* Sent by lo itself, a datagram comes back in as input whatever the
     * loopback mode, so only the setting is checked here. */
    ck_assert_int_eq(tw_udp_set_loopback_mode(u, 0), 0);
    ck_assert_int_eq(tw_udp_get_loopback_mode(u), 0);
    ck_assert_int_eq(tw_udp_set_loopback_mode(u, 1), 0);
    ck_assert_int_eq(tw_udp_get_loopback_mode(u), 1);
    tw_udp_port_close(u);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_groups_and_interfaces_are_checked)
{
    tw_reactor *r = tw_reactor_new();
    member m;
    tw_udp_port *u = bind_member(r, "0.0.0.0", 0, &m);
    tw_address unicast = addr("127.0.0.1", 0), group6 = addr(GROUP6, 0),
               group = addr(GROUP4, 0), nowhere = addr("192.0.2.77", 0);
    ck_assert_int_eq(tw_udp_join_group(u, &unicast, NULL), -EINVAL);
    ck_assert_int_eq(tw_udp_join_group(u, &group6, NULL), -EAFNOSUPPORT);
    ck_assert_int_eq(tw_udp_join_group(u, &group, &nowhere), -ENODEV);
    ck_assert_int_eq(tw_udp_set_outgoing_interface(u, &nowhere), -ENODEV);
    tw_udp_port_close(u);

    /* A UNIX datagram port has no multicast. */
    char path[64];
    snprintf(path, sizeof path, "/tmp/twine-mc-%ld.sock", (long)getpid());
    tw_address ua;
    ck_assert_int_eq(tw_address_from_unix(&ua, path), 0);
    memset(&m, 0, sizeof m);
    m.base.ops = &m_ops;
    ck_assert_int_eq(tw_udp_listen(r, &ua, &m.base, &u), 0);
    ck_assert_int_eq(tw_udp_join_group(u, &group, NULL), -EAFNOSUPPORT);
    ck_assert_int_eq(tw_udp_set_ttl(u, 2), -EAFNOSUPPORT);
    ck_assert_int_eq(tw_udp_set_broadcast_allowed(u, 1), -EAFNOSUPPORT);
    tw_udp_port_close(u);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_broadcast_needs_the_ports_permission)
{
    tw_reactor *r = tw_reactor_new();
    member rx, tx;
    tw_udp_port *in = bind_member(r, "0.0.0.0", 0, &rx);
    tw_udp_port *out = bind_member(r, "0.0.0.0", 0, &tx);
    tw_address all = addr("127.255.255.255", port_of(in));
    ck_assert_int_eq(tw_udp_get_broadcast_allowed(out), 0);
    ck_assert_int_eq(tw_udp_write(out, "no", 2, &all), -EACCES);
    ck_assert_int_eq(tw_udp_set_broadcast_allowed(out, 1), 0);
    ck_assert_int_eq(tw_udp_get_broadcast_allowed(out), 1);
    ck_assert_int_eq(tw_udp_write(out, "yes", 3, &all), 0);
    settle(r, &rx, 1);
    ck_assert_int_eq(rx.received, 1);
    ck_assert_mem_eq(rx.last, "yes", 3);
    tw_udp_port_close(in);
    tw_udp_port_close(out);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_ipv6_members_join_and_leave_on_the_loopback_interface)
{
    tw_reactor *r = tw_reactor_new();
    member rx, tx;
    tw_address any6;
    ck_assert_int_eq(tw_address_from_ip(&any6, "::", 0), 0);
    memset(&rx, 0, sizeof rx);
    rx.base.ops = &m_ops;
    tw_udp_port *in;
    if (tw_udp_listen(r, &any6, &rx.base, &in) < 0) {
        fprintf(stderr, "check_multicast: no IPv6 here; IPv6 multicast not tested\n");
        tw_reactor_free(r);
        return;
    }
    tw_udp_port *out = bind_member(r, "::1", 0, &tx);
    tw_address group = addr(GROUP6, port_of(in)), lo = addr("::1", 0);
    ck_assert_int_eq(tw_udp_join_group(in, &group, &lo), 0);
    ck_assert_int_eq(tw_udp_set_ttl(out, 3), 0);
    ck_assert_int_eq(tw_udp_get_ttl(out), 3);
    ck_assert_int_eq(tw_udp_set_loopback_mode(out, 1), 0);
    ck_assert_int_eq(tw_udp_get_loopback_mode(out), 1);
    ck_assert_int_eq(tw_udp_set_outgoing_interface(out, &lo), 0);
    ck_assert_int_eq(tw_udp_set_broadcast_allowed(out, 1), -EAFNOSUPPORT);
    int rc = tw_udp_write(out, "six", 3, &group);
    if (rc == -ENETUNREACH) {
        /* Linux's lo has no MULTICAST flag, so no IPv6 multicast route. */
        fprintf(stderr, "check_multicast: the kernel routes no IPv6 multicast over loopback; "
                        "IPv6 delivery not tested\n");
    } else {
        ck_assert_int_eq(rc, 0);
        settle(r, &rx, 1);
        ck_assert_int_eq(rx.received, 1);
        ck_assert_mem_eq(rx.last, "six", 3);
    }
    ck_assert_int_eq(tw_udp_leave_group(in, &group, &lo), 0);
    ck_assert_int_lt(tw_udp_leave_group(in, &group, &lo), 0);
    tw_udp_port_close(in);
    tw_udp_port_close(out);
    tw_reactor_free(r);
}
END_TEST

/* Whether this kernel delivers IPv4 multicast over loopback at all:
 * NULL, or the reason it does not. */
static const char *loopback_multicast_refused(void)
{
    static char why[160];
    int rx = socket(AF_INET, SOCK_DGRAM, 0), tx = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof a;
    struct ip_mreq m;
    inet_pton(AF_INET, GROUP4, &m.imr_multiaddr);
    inet_pton(AF_INET, "127.0.0.1", &m.imr_interface);
    const char *step = NULL;
    if (rx < 0 || tx < 0)
        step = "socket";
    else if (bind(rx, (struct sockaddr *)&a, sizeof a) < 0 ||
             getsockname(rx, (struct sockaddr *)&a, &len) < 0)
        step = "bind";
    else if (setsockopt(rx, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof m) < 0)
        step = "IP_ADD_MEMBERSHIP on 127.0.0.1";
    else if (setsockopt(tx, IPPROTO_IP, IP_MULTICAST_IF, &m.imr_interface,
                        sizeof m.imr_interface) < 0)
        step = "IP_MULTICAST_IF 127.0.0.1";
    if (step == NULL) {
        a.sin_addr = m.imr_multiaddr;
        struct pollfd p = {rx, POLLIN, 0};
        if (sendto(tx, "?", 1, 0, (struct sockaddr *)&a, sizeof a) != 1)
            step = "sending to the group";
        else if (poll(&p, 1, 1000) != 1)
            step = "receiving from the group (nothing came within 1 s)";
    }
    if (step != NULL)
        snprintf(why, sizeof why, "%s failed: %s", step, errno ? strerror(errno) : "timeout");
    if (rx >= 0)
        close(rx);
    if (tx >= 0)
        close(tx);
    return step != NULL ? why : NULL;
}

int main(void)
{
    const char *why = loopback_multicast_refused();
    if (why != NULL) {
        printf("SKIP: this kernel refuses multicast on loopback (%s)\n", why);
        return 77;
    }
    Suite *s = suite_create("multicast");
    TCase *tc = tcase_create("multicast");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_a_member_receives_the_group_on_loopback_until_it_leaves);
    tcase_add_test(tc, test_ttl_and_loopback_mode_read_back_and_a_port_hears_its_own_group);
    tcase_add_test(tc, test_groups_and_interfaces_are_checked);
    tcase_add_test(tc, test_broadcast_needs_the_ports_permission);
    tcase_add_test(tc, test_ipv6_members_join_and_leave_on_the_loopback_interface);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
