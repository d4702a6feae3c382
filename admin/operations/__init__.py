from admin.operations.routes import bp

__all__ = ["bp"]
