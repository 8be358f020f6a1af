/* SPDX-License-Identifier: MIT */
/*
 * What the pump needs of the string transport beyond the public API: its
 * constructor in two halves, so that both transports of a pair exist before
 * either protocol hears of its connection and a failed allocation leaves
 * both protocols untouched.
 */
#ifndef TWINE_TESTING_INTERNAL_H
#define TWINE_TESTING_INTERNAL_H

#include <twine/testing.h>

/* A string transport for @p p (p->transport is set), with no callback run.
 * @return NULL when memory ran out (@p p is untouched). */
tw_string_transport *tw__string_transport_attach(tw_reactor *r, tw_protocol *p);

/* Deliver connection_made on a transport made by tw__string_transport_attach(). */
void tw__string_transport_make(tw_string_transport *t);

#endif
