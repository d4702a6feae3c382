from core.routes import bp

__all__ = ["bp"]
