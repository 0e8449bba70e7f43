"""moto's server (`moto_server`, the version infra/local/aws-local.sh pins) with two changes
that make it cheaper per call without changing any answer. moto 5.2.5 does work that grows with
the table on calls that DynamoDB serves from one partition; in the AWS tests (py-spy, one
server) these two were a third of moto's time, and moto's time is most of theirs.

- A TransactWriteItems deep-copies each table it names before it runs, to roll the table back
  when the transaction is cancelled (18 %: every end user's creation copied the directory
  table). Here the backup is the transaction's own items (at most 100), taken before moto's
  code runs, and a cancelled transaction puts exactly them back: the same checks, answers and
  errors, the same items after a cancellation (DynamoDB's rule: all of its writes or none).
- A Query lists and sorts every item of the table, then keeps one partition's (17 %). Here
  a Query of the table lists only the partition's items, and one of an index lists the items
  unsorted: moto sorts what it keeps by the full key afterwards either way, so the answer and
  its order are the same. Scans keep moto's sorted listing (their pages depend on it).

Usage is moto_server's: `python infra/local/moto_server.py -H 127.0.0.1 -p 4566`.
"""

import copy
import sys
import threading

from moto.dynamodb import models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.server import main


class _TablesUncopied:
    """`copy` as moto.dynamodb.models sees it: a table's deep copy is the table itself; every
    other copy is `copy`'s own. The items a transaction writes are backed up by
    `transact_write_items` below."""

    def __getattr__(self, name):
        return getattr(copy, name)

    @staticmethod
    def deepcopy(x, memo=None):
        return x if isinstance(x, Table) else copy.deepcopy(x, memo)


_moto_transact_write_items = DynamoDBBackend.transact_write_items


def _key_of(table, op):
    if "Item" in op:
        attrs = op["Item"]
        key = {table.hash_key_attr: attrs[table.hash_key_attr]}
        if table.range_key_attr is not None:
            key[table.range_key_attr] = attrs[table.range_key_attr]
        return key
    return op["Key"]


def _backup(backend, transact_items):
    """(table, hash key, range key, the item as it is or None) for each item the transaction
    names; an entry moto will refuse is left to moto."""
    saved = []
    for entry in transact_items:
        try:
            ((_, op),) = entry.items()
            table = backend.get_table(op["TableName"])
            hash_key, range_key = backend.get_keys_value(table, _key_of(table, op))
            item = table.get_item(hash_key, range_key)
            saved.append((table, hash_key, range_key, copy.deepcopy(item)))
        except Exception:  # noqa: BLE001 - moto's own code reports what is wrong with it
            continue
    return saved


def _restore(saved):
    for table, hash_key, range_key, item in reversed(saved):
        if table.range_key_attr is not None:
            part = table.items[hash_key]
            if item is None:
                part.pop(range_key, None)
            else:
                part[range_key] = item
        elif item is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = item


def transact_write_items(self, transact_items):
    saved = _backup(self, transact_items)
    try:
        return _moto_transact_write_items(self, transact_items)
    except Exception:
        _restore(saved)
        raise


_moto_all_items = Table.all_items
_moto_query = Table.query
_querying = threading.local()
_INDEX_NAME = 7  # Table.query's positional index_name, as DynamoDBBackend.query passes it


def all_items(self):
    partition = getattr(_querying, "partition", None)
    if partition is None or partition[0] is not self:
        return _moto_all_items(self)
    _, hash_key = partition
    if hash_key is None:  # an index: every item, in no order (the query sorts what it keeps)
        if self.range_key_attr is None:
            return list(self.items.values())
        return [item for part in self.items.values() for item in part.values()]
    part = self.items.get(hash_key)
    if part is None:
        return []
    return list(part.values()) if self.range_key_attr is not None else [part]


def query(self, hash_key, *args, **kwargs):
    index_name = args[_INDEX_NAME - 1] if len(args) >= _INDEX_NAME else kwargs.get("index_name")
    previous = getattr(_querying, "partition", None)
    _querying.partition = (self, None if index_name else hash_key)
    try:
        return _moto_query(self, hash_key, *args, **kwargs)
    finally:
        _querying.partition = previous


models.copy = _TablesUncopied()
DynamoDBBackend.transact_write_items = transact_write_items
Table.all_items = all_items
Table.query = query

if __name__ == "__main__":
    sys.exit(main())
