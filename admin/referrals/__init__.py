from admin.referrals.routes import bp

__all__ = ["bp"]
