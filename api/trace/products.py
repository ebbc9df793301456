"""Products (by GTIN) and their lots, each a producer's own."""

from __future__ import annotations

import time

from sqlmodel import Session

from credtrace.errors import Conflict, NotAuthorised, NotFound, ValidationFailed
from node_bridge import trace
from node_bridge.trace_models import Lot, Product

MAX_TEXT = 200


def register_product(session: Session, producer: str, gtin: str, name: str, description: str = "") -> Product:
    """A new product of ``producer`` (a member id); 409 if the GTIN is registered already."""
    gtin14 = trace.normalise_gtin(gtin)
    if not name.strip():
        raise ValidationFailed("name", "must name the product")
    if len(name) > MAX_TEXT:
        raise ValidationFailed("name", f"is {len(name)} characters; at most {MAX_TEXT}")
    existing = session.get(Product, gtin14)
    if existing is not None:
        owner = "you" if existing.producer == producer else existing.producer
        raise Conflict("gtin", "ProductExists", f"GTIN {gtin14} is registered already (by {owner})")
    product = Product(gtin=gtin14, producer=producer, name=name.strip(), description=description)
    session.add(product)
    session.flush()
    return product


def own_product(session: Session, producer: str, gtin: str, field_name: str = "gtin") -> Product:
    """The product ``gtin`` of ``producer``; 404 if unknown, 403 if another producer's."""
    gtin14 = trace.normalise_gtin(gtin, field_name)
    product = session.get(Product, gtin14)
    if product is None:
        raise NotFound(f"{field_name}: no product {gtin14} is registered (POST /v1/trace/products)")
    if product.producer != producer:
        raise NotAuthorised(f"{field_name}: product {gtin14} belongs to producer {product.producer}, not you")
    return product


def _date(value: str | None, field_name: str) -> str | None:
    if value is None:
        return None
    try:
        time.strptime(value, "%Y-%m-%d")
    except (TypeError, ValueError):
        raise ValidationFailed(field_name, "must be an ISO date YYYY-MM-DD") from None
    return value


def register_lot(
    session: Session, producer: str, gtin: str, lot: str, produced_on: str | None = None, best_before: str | None = None
) -> Lot:
    """A new lot of one of ``producer``'s products; 409 if it exists."""
    product = own_product(session, producer, gtin)
    lot = trace.check_lot(lot)
    lot_id = f"{product.gtin}/{lot}"
    if session.get(Lot, lot_id) is not None:
        raise Conflict("lot", "LotExists", f"lot {lot} of {product.gtin} is registered already")
    row = Lot(
        id=lot_id,
        gtin=product.gtin,
        lot=lot,
        producer=producer,
        produced_on=_date(produced_on, "produced_on"),
        best_before=_date(best_before, "best_before"),
    )
    session.add(row)
    session.flush()
    return row


def own_lot(session: Session, producer: str, gtin: str, lot: str) -> Lot:
    product = own_product(session, producer, gtin)
    row = session.get(Lot, f"{product.gtin}/{trace.check_lot(lot)}")
    if row is None:
        raise NotFound(f"lot: no lot {lot} of {product.gtin} is registered (POST /v1/trace/lots)")
    return row
