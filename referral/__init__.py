from referral.routes import bp

__all__ = ["bp"]
