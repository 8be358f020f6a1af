/* SPDX-License-Identifier: MIT */
/*
 * The intrusive list the reactor keeps its connections and listeners on:
 * O(1) insert and remove with no allocation, so tracking a connection costs
 * two pointers in a structure that already exists.
 */
#include "config.h"

#include "reactor_internal.h"

void tw__list_push(tw__list *l, tw__link *n)
{
    n->prev = NULL;
    n->next = l->head;
    if (l->head != NULL)
        l->head->prev = n;
    l->head = n;
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
    n->prev = n->next = NULL;
    l->count--;
}
