/* SPDX-License-Identifier: MIT */
/*
 * The TLS tests' certificates: made once per test program by
 * tests/tls/mkcerts.sh (a CA, a server certificate for localhost, a client
 * certificate, an expired and a self-signed one, a key that matches
 * nothing) into a fresh directory under P_tmpdir, and removed at its end.
 * Never committed: no private key of a real host is in the tree.
 */
#ifndef TWINE_TESTS_TLSCERTS_H
#define TWINE_TESTS_TLSCERTS_H

/* Make the certificates in P_tmpdir/@p tag.PID; exits 99 (a hard error
 * for automake) when mkcerts.sh fails. TWINE_SRCDIR locates the script. */
void tu_tls_make_certs(const char *tag);

/* The path of certificate file @p name ("ca.pem", "server.key"...). The
 * result stays valid for the next 7 calls, so one expression may hold
 * several. */
const char *tu_tls_cert(const char *name);

/* Remove the directory tu_tls_make_certs() made. */
void tu_tls_remove_certs(void);

#endif
