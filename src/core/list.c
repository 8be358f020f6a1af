/* SPDX-License-Identifier: MIT */
/*
 * The intrusive list (list_internal.h): O(1) insert and remove with no
 * allocation, so tracking a connection or a waiter costs two pointers in a
 * structure that already exists.
 */
#include "config.h"

#include "core/list_internal.h"

void tw__list_push(tw__list *l, tw__link *n)
{
    n->prev = NULL;
    n->next = l->head;
    if (l->head != NULL)
        l->head->prev = n;
    else
        l->tail = n;
    l->head = n;
    l->count++;
}

void tw__list_append(tw__list *l, tw__link *n)
{
    n->next = NULL;
    n->prev = l->tail;
    if (l->tail != NULL)
        l->tail->next = n;
    else
        l->head = n;
    l->tail = n;
    l->count++;
}

void tw__list_remove(tw__list *l, tw__link *n)
{
    if (n->prev != NULL)
        n->prev->next = n->next;
    else
        l->head = n->next;
    if (n->next != NULL)
        n->next->prev = n->prev;
    else
        l->tail = n->prev;
    n->prev = n->next = NULL;
    l->count--;
}

void tw__list_replace(tw__list *l, tw__link *old, tw__link *n)
{
    *n = *old;
    if (n->prev != NULL)
        n->prev->next = n;
    else
        l->head = n;
    if (n->next != NULL)
        n->next->prev = n;
    else
        l->tail = n;
    old->prev = old->next = NULL;
}

tw__link *tw__list_shift(tw__list *l)
{
    tw__link *n = l->head;
    if (n != NULL)
        tw__list_remove(l, n);
    return n;
}
