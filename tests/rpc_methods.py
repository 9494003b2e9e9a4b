"""Every RPC of the exchange's services, enumerated from the generated descriptors, so a
test that covers "every RPC" covers a new one without being edited."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator

from google.protobuf.descriptor import MethodDescriptor

from clients.generated import exchange as exchange_package


def exchange_methods() -> Iterator[tuple[str, MethodDescriptor]]:
    """(service full name, method descriptor) of every RPC of every exchange.v1 service."""
    package = importlib.import_module(f"{exchange_package.__name__}.v1")
    for module_info in pkgutil.iter_modules(package.__path__):
        if not module_info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"{package.__name__}.{module_info.name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                yield service.full_name, method
