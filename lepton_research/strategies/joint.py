"""Joint training, the upper bound (van de Ven's "offline" baseline).

At task t the model trains on the union of tasks 0..t with the same per-task budget, so row k of its
accuracy matrix is a model trained jointly on the first k tasks and the last row is joint training on all.
The matrix keeps T+1 rows and lines up with every other strategy's.
"""

from lepton_research.data.stream import TensorData
from lepton_research.strategies.base import Strategy


class Joint(Strategy):
    def task_data(self, stream, t: int) -> TensorData:
        return TensorData.concat([stream[i].train for i in range(t + 1)])
