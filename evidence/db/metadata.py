"""The one SQLAlchemy `MetaData`; each domain package declares its own tables on it."""

from sqlalchemy import MetaData

metadata = MetaData()
