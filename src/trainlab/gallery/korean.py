"""The gallery in Korean (``trainlab gallery --lang ko``): verdict words, entry texts, finding statements.

Entries keep their English text on the `Entry`; this module holds the Korean
beside it, keyed by entry id (title, claim, data, literature) and by the
English statement of each finding. What has no Korean text falls back to the
English (a test checks that every entry and every finding has one).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["KOREAN", "MEASURES", "STATEMENTS", "measure", "entry_text", "finding_sentence", "text", "verdict_sentence", "word"]

WORDS_KO = {"holds": "성립", "does not hold here": "여기서는 성립하지 않음", "inconclusive": "판단 보류"}

UI: dict[str, dict[str, str]] = {
    "list_title": {"en": "trainlab gallery: the claims of the notes, measured",
                   "ko": "trainlab 갤러리: 노트의 주장을 실제 데이터로 검증"},
    "list_hint": {"en": "`trainlab gallery C4` runs one (add --quick for a small version); --all runs every "
                        "entry and writes runs/gallery/index.html; --export FILE copies an entry's spec.",
                  "ko": "`trainlab gallery C4`로 항목 하나를 실행합니다(--quick은 작은 버전). --all은 모든 항목을 "
                        "실행하고 runs/gallery/index.html을 만듭니다. --export FILE은 항목의 명세를 복사합니다."},
    "claim": {"en": "claim", "ko": "주장"},
    "status": {"en": "last verdict", "ko": "최근 판정"},
    "not_run": {"en": "not run", "ko": "실행 전"},
    "unavailable": {"en": "not available here", "ko": "이 설치에서는 실행 불가"},
    "quick": {"en": "quick", "ko": "빠른 버전"},
    "data": {"en": "Data", "ko": "데이터"},
    "page": {"en": "page: {path}", "ko": "결과 페이지: {path}"},
    "summary_title": {"en": "gallery verdicts", "ko": "갤러리 판정"},
    "verdict": {"en": "verdict", "ko": "판정"},
    "effect": {"en": "effect", "ko": "효과"},
    "seeds": {"en": "seeds", "ko": "시드"},
    "time": {"en": "time s", "ko": "시간(초)"},
    "exported": {"en": "wrote {path}: the study spec of {entry}. Edit it, then `trainlab study {path}`.",
                 "ko": "{path}에 {entry}의 study 명세를 저장했습니다. 수정한 뒤 `trainlab study {path}`로 "
                       "실행하세요."},
}

#: Korean text of each entry: title, claim, why this data, and when the literature says the claim holds.
KOREAN: dict[str, dict[str, str]] = {
    "C1": {
        "title": "너무 작거나 너무 큰 학습률",
        "claim": "학습률이 너무 작으면 주어진 스텝 안에 진전이 없고, 너무 크면 발산하거나 최솟값을 찾지 못한다.",
        "data": "번들 digits(학습용 이미지 1437장, 특성 64개): 학습률 6개 x 시드 5개를 몇 초 만에 학습할 수 있고, "
                "순수 SGD로 20에폭 안에 두 가지 실패가 모두 드러난다.",
        "literature": "스텝 수가 고정되어 있을 때(Bengio 2012; Goodfellow 외 2016, 8.3절). 스텝을 충분히 늘리면 "
                      "작은 학습률도 수렴한다",
    },
    "C2": {
        "title": "학습률 감쇠",
        "claim": "학습률을 줄여 가면(step, cosine) 상수로 둘 때보다 더 좋게 끝난다. cosine 감쇠가 linear 감쇠보다 "
                 "낫다고들 한다.",
        "data": "MNIST-1D(학습용 신호 4000개): MLP가 포화시키지 못해 최종 정확도가 스케줄에 따라 달라진다. "
                "digits에서는 어떤 스케줄이든 97% 근처에서 끝난다.",
        "literature": "학습이 충분히 길어 상수 학습률의 잡음이 최종 손실을 좌우할 때(CIFAR에서 cosine과 step을 "
                      "비교한 Loshchilov와 Hutter 2017). cosine과 linear의 차이는 대개 잡음 수준이다(Defazio 외 "
                      "2023은 linear 감쇠가 같거나 더 낫다고 보고)",
    },
    "C3": {
        "title": "워밍업",
        "claim": "워밍업을 하면 원래라면 실패했을 큰 학습률로 학습을 시작할 수 있다.",
        "data": "번들 digits와 4층 ReLU 신경망: 모멘텀 SGD의 큰 학습률이 처음 몇 스텝에서 터질 만큼 깊고, "
                "24개 실행을 몇 초 만에 끝낼 만큼 작다.",
        "literature": "초기 스텝이 불안정할 때: 큰 배치(Goyal 외 2017), 트랜스포머의 Adam(Liu 외 2020), "
                      "정규화 없는 아주 깊은 신경망",
    },
    "C4": {
        "title": "초기화: 표준정규, Xavier, He",
        "claim": "표준정규분포로 초기화하면 시그모이드 층이 포화되어 활성값이 0과 1에 몰린다. Xavier/Glorot "
                 "(1/√n, Keras에서는 √(2/(n+m)))는 시그모이드/tanh 활성값을 고르게 퍼뜨리고, He(√(2/n))는 "
                 "ReLU에서 같은 역할을 한다. ReLU에 Xavier를 쓰면 깊어질수록 활성값이 줄어든다.",
        "data": "표준화한 번들 digits: 이 주장은 학습 전, 초기화 시점의 일이라 특성의 분산이 1인 데이터면 "
                "무엇이든 보여 준다. digits는 뒤따르는 짧은 학습도 빠르다.",
        "literature": "층이 넓고 입력이 표준화되어 있을 때(Glorot와 Bengio 2010; He 외 2015)",
    },
    "C5": {
        "title": "기울기 소실: 시그모이드 대 ReLU",
        "claim": "깊은 시그모이드 층을 지나며 기울기가 사라진다. ReLU는 기울기를 그대로 통과시킨다.",
        "data": "은닉층 8개를 쌓은 번들 digits: 이 효과는 데이터가 아니라 깊이의 문제이고, digits로 실행을 "
                "짧게 유지한다.",
        "literature": "층이 깊고(Hochreiter 1991; Glorot와 Bengio 2010) 정규화나 잔차 연결이 없을 때",
    },
    "C6": {
        "title": "죽은 ReLU",
        "claim": "ReLU는 큰 스텝이나 음수 입력(편향) 때문에 죽는다.",
        "data": "번들 digits: 검증 행 360개 모두에서 0이어야 '죽었다'고 보므로 엄격한 기준이 되고, 실행은 몇 초면 "
                "끝난다.",
        "literature": "한 번의 업데이트로 유닛의 편향이 크게 음수가 될 만큼 학습률이 클 때(Lu 외 2019, 'Dying ReLU "
                      "and initialization'). He 초기화와 작은 학습률이면 대부분의 유닛이 살아 있다",
    },
    "C7": {
        "title": "규제와 일반화 격차",
        "claim": "L1/L2 가중치 감쇠, 드롭아웃, 조기 종료는 학습과 검증 사이의 격차를 줄인다. L2는 가중치를 고르게 "
                 "퍼뜨리고 L1은 희소하게 만든다. 커널 규제는 가중치에, 활동 규제는 출력에 작용한다.",
        "data": "학습용 이미지가 359장뿐인 번들 digits(80%를 검증으로 남김): 2 x 256 신경망이 몇 에폭 만에 "
                "과적합하므로 줄일 격차가 생긴다. 데이터를 다 쓰면 격차가 너무 작아 보이지 않는다.",
        "literature": "신경망이 과적합할 때: 예제는 적고 파라미터는 많을 때(드롭아웃은 Srivastava 외 2014; "
                      "Goodfellow 외 2016, 7장)",
    },
    "C8": {
        "title": "배치 정규화",
        "claim": "배치 정규화는 더 큰 학습률을 허용하고, 초기화에 덜 민감하게 만들며, 깊은 신경망에서 가장 큰 "
                 "도움이 된다.",
        "data": "번들 digits: 학습 가능성에 관한 주장이라 작은 데이터에서 10에폭 안에 드러나고, 설정 8개 x 시드 "
                "5개가 몇 초 만에 끝난다.",
        "literature": "Ioffe와 Szegedy 2015처럼 잔차 연결이 없는 깊은 평범한 신경망일 때. Santurkar 외 2018은 "
                      "그 이유를 더 매끄러운 손실 지형으로 본다",
    },
    "C9": {
        "title": "모멘텀, 네스테로프, Adam",
        "claim": "모멘텀은 순수 SGD보다 빠르고, 네스테로프는 모멘텀보다 빨리 수렴한다. SGD + 모멘텀은 학습률에 "
                 "민감하고 Adam은 훨씬 덜 민감하다.",
        "data": "번들 digits: 옵티마이저 x 학습률 20개 설정 x 시드 5개, 모두 100번의 실행을 digits는 쌓아서 "
                "1분 안팎에 학습하고, 속도 차이는 10에폭이면 보인다.",
        "literature": "문제가 나쁜 조건(ill-conditioned)이고 학습률이 작을 때(깊은 오토인코더에서 모멘텀과 "
                      "네스테로프를 다룬 Sutskever 외 2013). 네스테로프의 이점은 전체 기울기를 쓰는 볼록 문제의 "
                      "최악 경우 보장이라, 잡음 많은 미니배치에서는 잘 보이지 않는 경우가 많다",
    },
    "C10": {
        "title": "Adagrad, Adadelta, RMSprop",
        "claim": "Adagrad는 기울기 제곱을 계속 누적해서 스텝이 줄어들다 결국 학습이 멈춘다. Adadelta와 RMSprop이 "
                 "이 문제를 고친다. Adadelta는 학습률이 필요 없다.",
        "data": "MNIST-1D: MLP가 여러 에폭 동안 계속 나아지므로, 학습이 멈추면 다른 옵티마이저가 내려가는 동안 "
                "평평한 구간으로 드러난다. digits에서는 모든 옵티마이저가 먼저 학습 정확도 100% 가까이에 닿는다.",
        "literature": "학습이 길어 기울기 제곱의 합이 커질 때(Zeiler 2012; Hinton의 RMSprop 강의). Adadelta의 "
                      "단위 보정이 학습률을 없애는 것은 논문의 형태에서만이다(torch와 Keras는 여전히 lr을 곱한다)",
    },
    "C11": {
        "title": "큰 배치와 날카로운 최솟값",
        "claim": "큰 배치는 날카로운(sharp) 최솟값을, 작은 배치는 평평한(flat) 최솟값을 찾는다. 평평한 최솟값이 "
                 "더 잘 일반화한다.",
        "data": "MNIST-1D: 배치 크기를 바꿔 가며 여러 번 학습해도 CPU에서 감당할 수 있고, 일반화 격차가 보일 만큼 "
                "과적합한다.",
        "literature": "학습률을 배치 크기에 맞춰 늘리지 않고 같은 에폭 동안 학습할 때(Keskar 외 2017). Dinh 외 "
                      "2017은 날카로움이 재매개화에 따라 달라진다고 지적했고, Goyal 외 2017은 학습률을 비례해 "
                      "키우면 차이가 사라진다고 보였다",
    },
    "C12": {
        "title": "k-겹 교차 검증 대 단일 홀드아웃",
        "claim": "k-겹 교차 검증은 단일 홀드아웃 분할보다 일반화 성능을 더 믿을 만하게 추정한다.",
        "data": "번들 breast_cancer(569개): 데이터가 작아서 홀드아웃 하나의 추정치가 분할에 따라 크게 흔들린다.",
        "literature": "데이터가 작을 때(Kohavi 1995). 데이터가 크면 홀드아웃 하나로도 충분하다",
    },
    "C13": {
        "title": "배깅과 분산",
        "claim": "배깅(부트스트랩 + 평균)은 분산을 줄인다.",
        "data": "번들 wine과 digits: 작은 데이터에서 학습한 신경망은 시드와 표본에 따라 예측이 크게 달라져 줄일 "
                "분산이 있다.",
        "literature": "기본 모델이 불안정할 때(Breiman 1996). 안정적인 모델에는 효과가 작다",
    },
    "C14": {
        "title": "부스팅과 편향",
        "claim": "부스팅(약한 학습기를 차례로 쌓기)은 편향을 줄인다.",
        "data": "번들 breast_cancer: 아주 작은 신경망(약한 학습기)이 과소적합하므로 줄일 편향이 있다.",
        "literature": "기본 학습기가 약하고 편향이 클 때(Freund와 Schapire 1997; Friedman 2001)",
    },
    "C15": {
        "title": "레이블 스무딩과 mixup",
        "claim": "레이블 스무딩과 mixup은 결과를 개선하고 과신(overconfidence)을 억제한다.",
        "data": "Fashion-MNIST(이미지 3000장): MLP가 30에폭 안에 과적합해 과신하게 되고, 클래스끼리 겹치는 "
                "부분(셔츠, 티셔츠, 풀오버)이 있어 부드러운 타깃이 도움이 된다고 하는 상황이다.",
        "literature": "신경망이 크고 과신할 만큼 오래 학습할 때(Szegedy 외 2016; Müller 외 2019 'When does label "
                      "smoothing help?'; mixup은 CIFAR/ImageNet 규모 합성곱망에서 Zhang 외 2018, Thulasidasan 외 "
                      "2019)",
    },
    "C16": {
        "title": "데이터가 적을 때의 데이터 증강",
        "claim": "데이터가 부족할 때 데이터 증강이 도움이 된다.",
        "data": "MNIST-1D: 숫자 패턴이 임의의 위치에 놓인 1차원 신호라서, 이동(shift) 증강이 테스트 데이터에 있는 "
                "변형을 정확히 더해 준다. 신호 500개와 4000개 모두 몇 초 만에 학습된다(Fashion-MNIST에서 뒤집기와 "
                "이동이 의미를 가지려면 합성곱망이 필요한데, 2코어 CPU에서는 느리다).",
        "literature": "증강이 데이터의 불변성과 맞고, 모델이 가진 예제만으로는 그 불변성을 배울 수 없을 때"
                      "(Simard 외 2003; Shorten과 Khoshgoftaar 2019)",
    },
    "C17": {
        "title": "입력 스케일링",
        "claim": "입력 스케일링([0, 1] 정규화나 표준화)은 학습에 중요하다.",
        "data": "번들 wine과 breast_cancer: 실제 측정값의 스케일이 네 자릿수나 차이 난다(wine의 proline은 1680까지, "
                "hue는 0.5 안팎). 바로 이런 때 스케일링이 중요하다. digits의 픽셀은 모두 같은 스케일이다.",
        "literature": "특성의 스케일이 서로 다르고 옵티마이저가 순수 경사 하강법일 때(LeCun 외 1998, 'Efficient "
                      "BackProp'). 적응형 옵티마이저와 배치 정규화를 쓰면 덜 중요해진다",
    },
    "C18": {
        "title": "tanh 대 시그모이드",
        "claim": "은닉층에서는 (0을 중심으로 하는) tanh가 시그모이드보다 잘 학습된다.",
        "data": "은닉층 3개의 번들 digits: 시그모이드 출력의 0이 아닌 평균이 다음 층의 업데이트를 치우치게 할 만큼 "
                "깊고, 20에폭 x 20개 실행이 몇 초면 끝날 만큼 작다.",
        "literature": "정규화 없는 신경망을 순수 SGD로 학습할 때(LeCun 외 1998; Glorot와 Bengio 2010은 시그모이드의 "
                      "맨 위층이 포화되는 것을 관찰). 적응형 옵티마이저와 배치 정규화는 차이를 줄인다",
    },
    "C19": {
        "title": "배치, 미니배치, 확률적 경사 하강법",
        "claim": "배치, 미니배치, 확률적 경사 하강법은 잡음과 속도를 맞바꾼다. 실전에서는 미니배치가 적절한 "
                 "중간이다.",
        "data": "번들 digits: 학습용 이미지 1437장이라 에폭마다 전체 배치 한 스텝과 예제 하나씩 1437스텝을 CPU에서 "
                "모두 감당할 수 있다.",
        "literature": "스텝당 비용이 고정 오버헤드나 병렬 하드웨어에 좌우될 때(Bottou 외 2018). 에폭 기준으로는 작은 "
                      "배치가 더 많이 나아가지만 스텝 하나의 비용은 큰 배치와 비슷하다",
    },
    "C20": {
        "title": "학습 중 잡음과 강건성",
        "claim": "입력이나 가중치에 잡음을 더하면 신경망이 더 강건해진다.",
        "data": "번들 digits: 픽셀을 표준화했으므로 '표준편차 1의 잡음'이 의미 있는 교란이 되고, 실행이 짧아 "
                "가중치 잡음 실행을 하나씩 학습해도 된다.",
        "literature": "테스트 교란이 학습 때의 잡음과 비슷할 때(Bishop 1995: 입력 잡음은 티호노프 규제와 같다; "
                      "가중치 잡음은 Graves 2011). 다른 종류의 교란에 대한 강건성까지 따라오지는 않는다",
    },
}

#: Each finding's statement (as the verdict functions write it) in Korean.
STATEMENTS: dict[str, str] = {
    "too low a rate (1e-4) ends far above a usual one (0.1)":
        "너무 작은 학습률(1e-4)은 보통의 학습률(0.1)보다 훨씬 높은 손실로 끝난다",
    "too high a rate (10) diverges or ends above a usual one (0.1)":
        "너무 큰 학습률(10)은 발산하거나 보통의 학습률(0.1)보다 높은 손실로 끝난다",
    "step decay ends better than a constant rate": "step 감쇠가 상수 학습률보다 좋게 끝난다",
    "cosine decay ends better than a constant rate": "cosine 감쇠가 상수 학습률보다 좋게 끝난다",
    "cosine decay ends better than linear decay": "cosine 감쇠가 linear 감쇠보다 좋게 끝난다",
    "at a high rate, a warmup ends better than no warmup": "큰 학습률에서는 워밍업을 한 쪽이 더 좋게 끝난다",
    "at a usual rate, a warmup changes little (second condition)":
        "보통의 학습률에서는 워밍업의 차이가 작다(두 번째 조건)",
    "a standard-normal init saturates sigmoid layers; Xavier does not":
        "표준정규 초기화는 시그모이드 층을 포화시키고 Xavier는 그렇지 않다",
    "a standard-normal init saturates tanh layers; Xavier does not":
        "표준정규 초기화는 tanh 층을 포화시키고 Xavier는 그렇지 않다",
    "with ReLU, He keeps the spread through depth; Xavier's shrinks":
        "ReLU에서 He는 깊이가 깊어져도 퍼짐을 유지하고 Xavier는 줄어든다",
    "the gradient reaching the first layer is smaller, relative to the last, through sigmoid than through ReLU":
        "마지막 층에 비해 첫 층에 도달하는 기울기가 ReLU보다 시그모이드에서 더 작다",
    "the deep ReLU stack learns faster than the deep sigmoid stack":
        "깊은 ReLU 신경망이 깊은 시그모이드 신경망보다 빨리 배운다",
    "a large step (lr 1) leaves more dead ReLUs than a usual one (0.1)":
        "큰 스텝(lr 1)은 보통의 스텝(0.1)보다 죽은 ReLU를 더 많이 남긴다",
    "a negative bias (-1) leaves more dead ReLUs than a zero bias":
        "음수 편향(-1)은 0 편향보다 죽은 ReLU를 더 많이 남긴다",
    "L2 shrinks the train/validation gap": "L2가 학습/검증 격차를 줄인다",
    "L1 shrinks the train/validation gap": "L1이 학습/검증 격차를 줄인다",
    "dropout shrinks the train/validation gap": "드롭아웃이 학습/검증 격차를 줄인다",
    "early stopping shrinks the train/validation gap": "조기 종료가 학습/검증 격차를 줄인다",
    "L1 makes weights sparse; L2 does not": "L1은 가중치를 희소하게 만들고 L2는 그렇지 않다",
    "a kernel regularizer (L2) acts on the weights": "커널 규제(L2)는 가중치에 작용한다",
    "an activity regularizer (L1) acts on the layer outputs": "활동 규제(L1)는 층의 출력에 작용한다",
    "at a high rate (1.0), batch norm trains where the plain network does not":
        "큰 학습률(1.0)에서 평범한 신경망은 학습하지 못해도 배치 정규화를 쓴 신경망은 학습한다",
    "from a bad init (normal, std 0.01), batch norm trains where the plain network does not":
        "나쁜 초기화(정규분포, 표준편차 0.01)에서 평범한 신경망은 학습하지 못해도 배치 정규화를 쓴 신경망은 학습한다",
    "batch norm helps the 6-layer stack more than the 2-layer one":
        "배치 정규화는 2층보다 6층 신경망에 더 큰 도움이 된다",
    "momentum goes faster than plain SGD": "모멘텀이 순수 SGD보다 빠르다",
    "Nesterov converges faster than momentum": "네스테로프가 모멘텀보다 빨리 수렴한다",
    "Adam is less sensitive to the learning rate than SGD + momentum":
        "Adam은 SGD + 모멘텀보다 학습률에 덜 민감하다",
    "RMSprop keeps learning where Adagrad stalls": "Adagrad가 멈추는 곳에서 RMSprop은 계속 배운다",
    "Adadelta (lr 1, its paper's rule) keeps learning where Adagrad stalls":
        "Adagrad가 멈추는 곳에서 Adadelta(lr 1, 논문의 규칙)는 계속 배운다",
    "Adagrad makes less of its progress late (its steps shrink)":
        "Adagrad는 학습 후반에 진전이 적다(스텝이 줄어든다)",
    "Adadelta still depends on the rate torch gives it: lr 1 vs lr 0.1":
        "Adadelta도 torch가 주는 학습률에 여전히 좌우된다: lr 1 대 lr 0.1",
    "label smoothing improves accuracy": "레이블 스무딩이 정확도를 높인다",
    "mixup improves accuracy": "mixup이 정확도를 높인다",
    "label smoothing curbs overconfidence": "레이블 스무딩이 과신을 억제한다",
    "mixup curbs overconfidence": "mixup이 과신을 억제한다",
    "label smoothing lowers the calibration error": "레이블 스무딩이 보정 오차(ECE)를 낮춘다",
    "mixup lowers the calibration error": "mixup이 보정 오차(ECE)를 낮춘다",
    "with scarce data (500 signals), augmentation helps": "데이터가 적을 때(신호 500개) 증강이 도움이 된다",
    "augmentation helps more with 500 signals than with 4000": "증강은 신호 4000개보다 500개일 때 더 큰 도움이 된다",
    "standardizing wine's inputs trains better than raw inputs": "wine의 입력을 표준화하면 원래 입력보다 잘 학습된다",
    "scaling wine's inputs to [0, 1] trains better than raw inputs":
        "wine의 입력을 [0, 1]로 스케일링하면 원래 입력보다 잘 학습된다",
    "standardizing breast_cancer's inputs trains better than raw inputs":
        "breast_cancer의 입력을 표준화하면 원래 입력보다 잘 학습된다",
    "with SGD, tanh hidden layers train faster than sigmoid ones": "SGD에서는 tanh 은닉층이 시그모이드보다 빨리 학습된다",
    "with SGD, tanh ends more accurate than sigmoid": "SGD에서는 tanh가 시그모이드보다 정확하게 끝난다",
    "with Adam, tanh ends more accurate than sigmoid (second condition)":
        "Adam에서도 tanh가 시그모이드보다 정확하게 끝난다(두 번째 조건)",
    "mini-batches (32) get further per epoch than the whole batch (1437)":
        "에폭당 미니배치(32)가 전체 배치(1437)보다 더 멀리 나아간다",
    "mini-batches (32) take less time per epoch than single examples (1)":
        "미니배치(32)는 예제 하나씩(1)보다 에폭당 시간이 적게 든다",
    "mini-batches end as well as single examples per epoch (second condition)":
        "에폭 기준으로 미니배치가 예제 하나씩만큼 좋게 끝난다(두 번째 조건)",
    "training with input noise makes the network more robust to noisy inputs":
        "입력 잡음을 넣어 학습하면 잡음 섞인 입력에 더 강건해진다",
    "training with weight noise makes the network more robust to noisy inputs":
        "가중치 잡음을 넣어 학습하면 잡음 섞인 입력에 더 강건해진다",
    "input noise also changes the clean accuracy": "입력 잡음은 깨끗한 입력의 정확도도 바꾼다",
    "large batches (1024) end in sharper minima than small ones (16)":
        "큰 배치(1024)는 작은 배치(16)보다 날카로운 최솟값에서 끝난다",
    "small batches (16) generalize better than large ones (1024)": "작은 배치(16)가 큰 배치(1024)보다 잘 일반화한다",
    "small batches also fit the training rows further in the same epochs":
        "같은 에폭 동안 작은 배치가 학습 데이터에도 더 잘 맞춘다",
    "the k-fold estimate moves less from seed to seed than the hold-out estimate":
        "k-겹 추정치는 홀드아웃 추정치보다 시드에 따라 덜 흔들린다",
    "a bagged ensemble's predictions vary less across training samples than a single network's":
        "배깅한 앙상블의 예측은 단일 신경망보다 학습 표본에 따라 덜 달라진다",
    "the bagged ensemble is also more accurate": "배깅한 앙상블이 정확도도 더 높다",
    "boosting lowers the weak learner's error on its own training rows (its bias)":
        "부스팅은 약한 학습기가 자기 학습 데이터에서 내는 오차(편향)를 줄인다",
    "boosting also lowers the held-out error": "부스팅은 홀드아웃 오차도 줄인다",
}

#: What each finding measures, in Korean.
MEASURES: dict[str, str] = {
    "clean final val_accuracy": "잡음 없는 입력의 최종 검증 정확도",
    "dead fraction after training, mean over 3 layers": "학습 후 죽은 유닛 비율(3개 층 평균)",
    "error on the training rows": "학습 데이터에서의 오차",
    "estimated accuracy": "추정한 정확도",
    "expected calibration error (validation)": "기대 보정 오차(검증)",
    "final training loss": "최종 학습 손실",
    "final val_accuracy": "최종 검증 정확도",
    "final val_loss after the same epochs": "같은 에폭 뒤의 최종 검증 손실",
    "first-layer weight norm": "첫 층 가중치의 노름",
    "held-out accuracy": "홀드아웃 정확도",
    "held-out error": "홀드아웃 오차",
    "log10(gradient norm of the first weight layer / the last), first step":
        "log10(첫 가중치 층의 기울기 노름 / 마지막 층의 기울기 노름), 첫 스텝",
    "mean confidence minus accuracy (validation)": "평균 신뢰도 - 정확도(검증)",
    "mean |hidden activation| on validation rows": "검증 데이터에서 은닉 활성값 절댓값의 평균",
    "rates ending within 2 points of the optimizer's best": "옵티마이저의 최고 성능에서 2포인트 안에 드는 학습률 수",
    "saturated fraction at init, mean over 5 layers": "초기화 시점의 포화 비율(5개 층 평균)",
    "seconds per epoch": "에폭당 시간(초)",
    "share of first-layer weights with |w| < 0.001": "첫 층 가중치 중 |w| < 0.001인 비율",
    "share of held-out predictions off the main prediction of other seeds":
        "다른 시드들의 주 예측과 다른 홀드아웃 예측의 비율",
    "share of the loss drop made in the second half of training": "손실 감소 중 학습 후반에 일어난 비율",
    "std of the 5th hidden layer / std of the 1st, at init": "초기화 시점의 5번째 은닉층 표준편차 / 1번째 은닉층 표준편차",
    "top Hessian eigenvalue of the training loss (1000 training rows)": "학습 손실 헤시안의 최대 고윳값(학습 데이터 1000행)",
    "training loss after the last epoch at lr 0.01": "lr 0.01에서 마지막 에폭 뒤의 학습 손실",
    "validation accuracy with input noise of std 1": "표준편차 1의 입력 잡음을 더한 검증 정확도",
    "validation minus training cross-entropy (eval mode)": "검증 교차 엔트로피 - 학습 교차 엔트로피(평가 모드)",
}


def measure(what: str) -> str:
    """A finding's measured quantity in Korean (English where none is written)."""
    base = what.removesuffix(" (std over seeds)")
    korean = MEASURES.get(base, base)
    return korean + (" (시드 간 표준편차)" if what.endswith(" (std over seeds)") else "")


def text(key: str, lang: str) -> str:
    """A user-interface string in `lang` ("en" or "ko")."""
    return UI[key].get(lang, UI[key]["en"])


def word(verdict_word: str, lang: str) -> str:
    """A verdict word in `lang`."""
    return WORDS_KO.get(verdict_word, verdict_word) if lang == "ko" else verdict_word


def entry_text(entry: Any, field: str, lang: str) -> str:
    """An entry's title, claim, data or literature text in `lang` (English where Korean is missing)."""
    if lang == "ko" and field in KOREAN.get(entry.id, {}):
        return KOREAN[entry.id][field]
    return str(getattr(entry, field))


def _effect_ko(finding: Any) -> str:
    shown = str(finding.effect_text())
    if math.isinf(finding.effect):
        loser = finding.worse if finding.effect > 0 else finding.better
        k = finding.diverged[1] if finding.effect > 0 else finding.diverged[0]
        n = finding.n[1] if finding.effect > 0 else finding.n[0]
        return f"{loser}: 시드 {n}개 중 {k}개 발산"
    return shown.replace(" points", "포인트").replace("(median difference)", "(중앙값 차이)").replace(
        "(difference of the stds)", "(표준편차 차이)")


def _test_ko(test: str) -> str:
    return {"Welch's t-test": "Welch t-검정", "Mann-Whitney U": "Mann-Whitney U 검정",
            "Welch t-test on a difference of differences": "차이의 차이에 대한 Welch t-검정"}.get(test, test)


def finding_sentence(finding: Any, lang: str) -> str:
    """One finding as a sentence in `lang`."""
    if lang != "ko":
        return str(finding.sentence())
    statement = STATEMENTS.get(finding.statement, finding.statement)
    seeds = f"시드 {finding.n[0]}개" if finding.n[0] == finding.n[1] else f"시드 {finding.n[0]}개와 {finding.n[1]}개"
    return (f"{word(finding.word, 'ko')}: {statement} — {measure(finding.what)}, {finding.better} 대 {finding.worse}: "
            f"{_effect_ko(finding)}, {finding.p_text()} ({_test_ko(finding.test)}, Holm 보정, {seeds})")


def verdict_sentence(verdict: Any, entry: Any, lang: str) -> str:
    """An entry's verdict as a sentence in `lang`: the word, the deciding finding, the conditions, and,
    when it does not hold, when the literature says it does."""
    if lang != "ko":
        return str(verdict.sentence())
    head = verdict.headline
    deciding = [f for f in verdict.findings if not f.context]
    held = sum(f.word == "holds" for f in deciding)
    parts = word(verdict.word, "ko") + (f" ({len(deciding)}개 중 {held}개 성립)" if len(deciding) > 1 else "")
    if head is not None:
        statement = STATEMENTS.get(head.statement, head.statement)
        seeds = f"시드 {head.n[0]}개" if head.n[0] == head.n[1] else f"시드 {head.n[0]}개와 {head.n[1]}개"
        parts += (f"; {statement}: {head.better} 대 {head.worse}, {_effect_ko(head)}, {head.p_text()} "
                  f"({seeds}, {_test_ko(head.test)}, Holm 보정)")
    sentence = parts + "."
    if verdict.conditions:
        sentence += f" 조건: {verdict.conditions}."
    if verdict.word != "holds":
        literature = KOREAN.get(entry.id, {}).get("literature", verdict.literature)
        if literature:
            sentence += f" 문헌에 따르면 이 주장은 다음 경우에 성립한다: {literature}."
    return sentence
