/*
 * Objects as JavaScript builds them: a key given twice keeps the first
 * key's position and the last value, and keys that are array indices come
 * first, in ascending order.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json-text.h"

/* Objects with at most this many keys are checked for duplicates pair by
 * pair, and larger ones through a hash table. */
#define SMALL_OBJECT_KEYS 8

/* Whether key is an array index, which JavaScript objects list first, in
 * ascending order: "0", or a decimal without leading zeros up to
 * 4294967294 (2^32 - 2). */
static bool is_array_index(const char *key, uint32_t *index_out) {
  uint64_t value = 0;
  size_t i;

  if (!is_digit((unsigned char)key[0]))
    return false;
  if (key[0] == '0' && key[1] != '\0')
    return false;

  for (i = 0; key[i] != '\0'; i++) {
    if (i == 10 || !is_digit((unsigned char)key[i]))
      return false;
    value = value * 10 + (uint64_t)(key[i] - '0');
  }
  if (value > 4294967294u)
    return false;
  *index_out = (uint32_t)value;
  return true;
}

/* Whether the object's members need reordering or merging: an array-index
 * key, or, among a few keys, one given twice. Large objects always go
 * through normalize_members(). */
static bool members_need_work(const cJSON *object, size_t *count_out) {
  const cJSON *member;
  size_t count = 0;
  bool needed = false;

  for (member = object->child; member != NULL; member = member->next) {
    uint32_t index;
    if (is_digit((unsigned char)member->string[0]) &&
        is_array_index(member->string, &index))
      needed = true;
    count++;
  }
  *count_out = count;
  if (needed || count > SMALL_OBJECT_KEYS)
    return true;

  for (member = object->child; member != NULL; member = member->next) {
    for (const cJSON *later = member->next; later != NULL;
         later = later->next) {
      if (member->string[0] == later->string[0] &&
          strcmp(member->string, later->string) == 0)
        return true;
    }
  }
  return false;
}

static uint64_t hash_key(const char *key) {
  uint64_t hash = 14695981039346656037u; /* FNV-1a */

  for (; *key != '\0'; key++) {
    hash ^= (unsigned char)*key;
    hash *= 1099511628211u;
  }
  return hash;
}

/* Replaces members[first] by members[later], which has the same key, and
 * frees the member it replaces: JavaScript keeps the first key's place
 * and the last value. */
static void merge_duplicate(cJSON **members, size_t first, size_t later) {
  cJSON *replaced = members[first];

  members[first] = members[later];
  members[later] = NULL;
  replaced->next = NULL; /* cJSON_Delete frees every following sibling */
  replaced->prev = NULL;
  cJSON_Delete(replaced);
}

/* Merges duplicate keys, with slots as scratch space: a hash table of
 * member positions plus one, slot_count of them, a power of two. */
static void merge_duplicates(cJSON **members, size_t count, size_t *slots,
                             size_t slot_count) {
  memset(slots, 0, slot_count * sizeof *slots);

  for (size_t i = 0; i < count; i++) {
    size_t slot = (size_t)hash_key(members[i]->string) & (slot_count - 1);

    while (slots[slot] != 0) {
      size_t first = slots[slot] - 1;
      if (strcmp(members[first]->string, members[i]->string) == 0) {
        merge_duplicate(members, first, i);
        break;
      }
      slot = (slot + 1) & (slot_count - 1);
    }
    if (slots[slot] == 0)
      slots[slot] = i + 1;
  }
}

typedef struct indexed_member {
  uint32_t index;
  cJSON *member;
} indexed_member;

static int compare_indexed_members(const void *a, const void *b) {
  uint32_t left = ((const indexed_member *)a)->index;
  uint32_t right = ((const indexed_member *)b)->index;
  return (left > right) - (left < right);
}

/* Links members (NULL entries skipped) as the object's children, in that
 * order, keeping cJSON's rule that the first child's prev is the last. */
static void relink_members(cJSON *object, cJSON **members, size_t count) {
  cJSON *first = NULL;
  cJSON *last = NULL;

  for (size_t i = 0; i < count; i++) {
    cJSON *member = members[i];
    if (member == NULL)
      continue;
    member->next = NULL;
    if (last == NULL) {
      first = member;
    } else {
      last->next = member;
      member->prev = last;
    }
    last = member;
  }
  if (first != NULL)
    first->prev = last;
  object->child = first;
}

/*
 * Reorders the members of an object with count members as JavaScript
 * lists an object's keys, duplicates merged: array indices ascending,
 * then the other keys in first-appearance order.
 */
static int normalize_members(cJSON *object, size_t count) {
  size_t slot_count = 16;
  size_t index_count = 0;
  size_t other_count = 0;
  cJSON **members;
  cJSON **ordered;
  indexed_member *indexed;
  size_t *slots;
  cJSON *member;
  size_t i = 0;

  while (slot_count < 2 * count)
    slot_count *= 2;
  /* One allocation for the member list, the array-index members, the hash
   * table and the reordered list. Every part has the alignment of a
   * pointer and a size that keeps the next part aligned. */
  members = malloc(count * (2 * sizeof(cJSON *) + sizeof(indexed_member)) +
                   slot_count * sizeof(size_t));
  if (members == NULL)
    return -ENOMEM;
  indexed = (indexed_member *)(void *)(members + count);
  slots = (size_t *)(void *)(indexed + count);
  ordered = (cJSON **)(void *)(slots + slot_count);

  for (member = object->child; member != NULL; member = member->next)
    members[i++] = member;
  merge_duplicates(members, count, slots, slot_count);

  for (i = 0; i < count; i++) {
    uint32_t index;
    if (members[i] != NULL && is_array_index(members[i]->string, &index)) {
      indexed[index_count].index = index;
      indexed[index_count++].member = members[i];
      members[i] = NULL;
    }
  }
  qsort(indexed, index_count, sizeof *indexed, compare_indexed_members);

  for (i = 0; i < index_count; i++)
    ordered[other_count++] = indexed[i].member;
  for (i = 0; i < count; i++) {
    if (members[i] != NULL)
      ordered[other_count++] = members[i];
  }
  relink_members(object, ordered, other_count);

  free(members);
  return 0;
}

int cp__json_normalize_object(cJSON *object) {
  size_t count;

  if (!members_need_work(object, &count))
    return 0;
  return normalize_members(object, count);
}
