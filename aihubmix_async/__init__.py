"""aihubmix_async: an asyncio-first SDK for AIHubMix's unified image-generation API.

.. code-block:: python

    async with aihubmix_async.Client() as client:
        result = await client.generate("gpt-image-1", "a lighthouse at dawn", size="1024x1024")
        await result.image.save("lighthouse.png")
"""

from ._batch import Batch
from ._blocking import BlockingClient
from ._blocking_results import BlockingOutcome, BlockingResult
from ._client import Client
from ._config import VERSION as __version__  # noqa: N811  (the dunder is the convention)
from ._config import ClientConfig, PollPolicy, RetryPolicy
from ._errors import (
    AIHubMixError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    BatchAbortedError,
    ConfigurationError,
    ConnectError,
    ContentPolicyError,
    GenerationFailedError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    ProviderLoadError,
    RateLimitError,
    RequestTimeout,
    ResponseFormatError,
    ServerError,
    TransportError,
)
from ._inputs import ImageInput
from ._models import (
    BatchProgress,
    BatchSummary,
    Cost,
    Failure,
    GeneratedImage,
    ImageRequest,
    ImageResult,
    ModelInfo,
    Outcome,
    ParamInfo,
    RequestEvent,
    ResponseEvent,
    Success,
    Usage,
)
from ._pricing import Price, PriceBook
from ._registry import Registry
from ._retry import set_testing
from ._spend import Estimate, ModelEstimate, SpendCapReached
from ._typed import ImageValue, ModelName
from ._typed_models import KnownModel

__all__ = [
    "AIHubMixError",
    "APIStatusError",
    "AuthenticationError",
    "BadRequestError",
    "Batch",
    "BatchAbortedError",
    "BatchProgress",
    "BatchSummary",
    "BlockingClient",
    "BlockingOutcome",
    "BlockingResult",
    "Client",
    "ClientConfig",
    "ConfigurationError",
    "ConnectError",
    "ContentPolicyError",
    "Cost",
    "Estimate",
    "Failure",
    "GeneratedImage",
    "GenerationFailedError",
    "ImageInput",
    "ImageRequest",
    "ImageResult",
    "ImageValue",
    "InvalidRequestError",
    "KnownModel",
    "ModelEstimate",
    "ModelInfo",
    "ModelName",
    "NotFoundError",
    "Outcome",
    "ParamInfo",
    "PermissionDeniedError",
    "PollPolicy",
    "Price",
    "PriceBook",
    "ProviderLoadError",
    "RateLimitError",
    "Registry",
    "RequestEvent",
    "RequestTimeout",
    "ResponseEvent",
    "ResponseFormatError",
    "RetryPolicy",
    "ServerError",
    "SpendCapReached",
    "Success",
    "TransportError",
    "Usage",
    "__version__",
    "set_testing",
]

# Tracebacks and reprs name the public path (aihubmix_async.Client), not the private module.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("aihubmix_async._"):
        _obj.__module__ = __name__
del _name, _obj
