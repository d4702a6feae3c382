from admin.routes import bp

__all__ = ["bp"]
